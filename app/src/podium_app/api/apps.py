"""apps."""

from fastapi import APIRouter

router = APIRouter(tags=["apps"])

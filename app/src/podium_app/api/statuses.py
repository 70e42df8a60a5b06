"""statuses."""

from fastapi import APIRouter

router = APIRouter(tags=["statuses"])

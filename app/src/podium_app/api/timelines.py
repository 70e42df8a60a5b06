"""timelines."""

from fastapi import APIRouter

router = APIRouter(tags=["timelines"])

"""Moderation: reports queue, suspensions, post removal, audit log."""

from fastapi import APIRouter

router = APIRouter(tags=["admin"])

"""Post text: links, @mentions and #hashtags found and rendered as safe HTML.

The text is escaped first; only the links the app creates become markup.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

URL_RE = re.compile(r"https?://[^\s<>\"'()]+[^\s<>\"'().,;:!?]")
MENTION_RE = re.compile(r"(?<![\w@/])@([A-Za-z0-9_]{1,30})(?:@([A-Za-z0-9.-]+\.[A-Za-z]{2,}))?")
TAG_RE = re.compile(r"(?<![\w&#/])#(\w{1,100})", re.UNICODE)
TOKEN_RE = re.compile(f"{URL_RE.pattern}|{MENTION_RE.pattern}|{TAG_RE.pattern}", re.UNICODE)


@dataclass
class Parsed:
    mentions: list[str]  # local usernames, as written
    tags: list[str]  # lower-cased, without '#'
    urls: list[str]


def parse(text: str, domain: str) -> Parsed:
    mentions, tags, urls = [], [], []
    for match in TOKEN_RE.finditer(text):
        token = match.group(0)
        if token.startswith("http"):
            urls.append(token)
        elif token.startswith("@"):
            name, host = match.group(1), match.group(2)
            if (host is None or host.lower() == domain.lower()) and name not in mentions:
                mentions.append(name)
        elif token.startswith("#"):
            tag = match.group(3).lower()
            if tag not in tags and not tag.isdigit():
                tags.append(tag)
    return Parsed(mentions=mentions, tags=tags, urls=urls)


def render(text: str, domain: str, known_users: set[str]) -> str:
    """HTML for a post: paragraphs, escaped text, links for URLs, known mentions, tags."""
    out: list[str] = []
    position = 0
    known = {name.lower() for name in known_users}
    for match in TOKEN_RE.finditer(text):
        out.append(html.escape(text[position:match.start()]))
        token = match.group(0)
        if token.startswith("http"):
            href = html.escape(token, quote=True)
            out.append(f'<a href="{href}" rel="nofollow noopener noreferrer" '
                       f'target="_blank">{html.escape(token)}</a>')
        elif token.startswith("@") and match.group(1).lower() in known and (
                match.group(2) is None or match.group(2).lower() == domain.lower()):
            name = html.escape(match.group(1))
            out.append(f'<span class="h-card"><a href="https://{domain}/@{name}" '
                       f'class="u-url mention">@<span>{name}</span></a></span>')
        elif token.startswith("#") and not match.group(3).isdigit():
            tag = html.escape(match.group(3))
            out.append(f'<a href="https://{domain}/tags/{tag.lower()}" class="mention hashtag" '
                       f'rel="tag">#<span>{tag}</span></a>')
        else:
            out.append(html.escape(token))
        position = match.end()
    out.append(html.escape(text[position:]))
    body = "".join(out)
    paragraphs = [p.replace("\n", "<br>") for p in re.split(r"\n{2,}", body) if p.strip()]
    return "".join(f"<p>{p}</p>" for p in paragraphs)

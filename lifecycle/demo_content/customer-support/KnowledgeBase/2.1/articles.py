"""Help articles that agents link in their replies and customers find by search."""

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    body: str
    updated_on: date
    published: bool = True


def suggest(articles: list[Article], subject: str, limit: int = 3) -> list[Article]:
    """Articles whose title shares words with a ticket's subject, shown beside the reply box."""
    words = {word for word in subject.lower().split() if len(word) > 3}
    scored = [(len(words & set(a.title.lower().split())), a) for a in articles if a.published]
    scored = [(points, article) for points, article in scored if points]
    scored.sort(key=lambda pair: (-pair[0], pair[1].title))
    return [article for _, article in scored[:limit]]

"""Shared test data for the enrichment tests."""

from __future__ import annotations

from workers.apps import AppConfig
from workers.enrich.base import EnrichContext

SHOP = AppConfig(
    app_id="shop",
    allowed_origins=("https://shop.example", "https://checkout.example.net"),
    domains=("shop.example",),
)
CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def context(
    user_agent: str | None = CHROME_WIN,
    accept_language: str | None = "en-GB,en;q=0.9",
    referer_header: str | None = None,
    geo: dict[str, object] | None = None,
    app: AppConfig | None = SHOP,
) -> EnrichContext:
    return EnrichContext(
        app=app,
        user_agent=user_agent,
        accept_language=accept_language,
        referer_header=referer_header,
        geo=geo,
    )

"""Deterministic demo history: the same arguments always give the same snapshots.

Every value is a function of (seed, series, timestamp) alone, so running the
seeder again later only adds the minutes that are new and duplicates the rest.
Prices follow a Brownian bridge between daily anchors; amounts change hourly,
like a desk that trades a few times a day.
"""

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from app.positions.ingest import Snapshot

DAY = 86_400
HOUR = 3_600


@dataclass(frozen=True)
class AssetProfile:
    price: float
    amount: float
    price_step: Decimal
    lot: Decimal


KNOWN_ASSETS = {
    "BTC": AssetProfile(62_000.0, 2.5, Decimal("0.01"), Decimal("0.0001")),
    "ETH": AssetProfile(3_100.0, 40.0, Decimal("0.01"), Decimal("0.001")),
    "SOL": AssetProfile(150.0, 800.0, Decimal("0.001"), Decimal("0.01")),
}


def profile_for(asset: str) -> AssetProfile:
    if asset in KNOWN_ASSETS:
        return KNOWN_ASSETS[asset]
    rng = random.Random(f"profile:{asset}")
    price = 10 ** rng.uniform(0, 4)
    return AssetProfile(price, 50_000 / price, Decimal("0.0001"), Decimal("0.01"))


def parse_interval(text: str) -> int:
    """'30s', '1m', '5m', '1h' → seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"interval must look like 30s, 1m or 1h (got {text!r})")
    seconds = int(text[:-1]) * units[text[-1]]
    if seconds <= 0 or DAY % seconds:
        raise ValueError("interval must be positive and divide a day evenly")
    return seconds


class DemoMarket:
    def __init__(self, seed: int, interval: int):
        self.seed = seed
        self.interval = interval
        self._day_prices = lru_cache(maxsize=64)(self._compute_day_prices)

    def _rng(self, *parts) -> random.Random:
        return random.Random(":".join(str(p) for p in (self.seed, *parts)))

    def _anchor(self, asset: str, day: int) -> float:
        z = self._rng("anchor", asset, day).gauss(0, 1)
        return profile_for(asset).price * math.exp(0.04 * z)

    def _compute_day_prices(self, asset: str, day: int) -> list[float]:
        steps = DAY // self.interval
        rng = self._rng("walk", asset, day)
        sigma = 0.02 / math.sqrt(steps)
        walk = [0.0]
        for _ in range(steps):
            walk.append(walk[-1] + rng.gauss(0, sigma))
        start, end = math.log(self._anchor(asset, day)), math.log(self._anchor(asset, day + 1))
        # Pin the walk to both anchors so consecutive days join without a jump.
        return [
            math.exp(start + w - (i / steps) * (walk[-1] - (end - start)))
            for i, w in enumerate(walk[:-1])
        ]

    def price(self, asset: str, epoch_seconds: int) -> Decimal:
        day, offset = divmod(epoch_seconds, DAY)
        value = self._day_prices(asset, day)[offset // self.interval]
        return Decimal(repr(value)).quantize(profile_for(asset).price_step)

    def amount(self, account: str, asset: str, epoch_seconds: int) -> Decimal:
        profile = profile_for(asset)
        scale = self._rng("size", account, asset).uniform(0.3, 1.5)
        hour = epoch_seconds // HOUR
        z = self._rng("trade", account, asset, hour).gauss(1, 0.6)
        return Decimal(repr(profile.amount * scale * z)).quantize(profile.lot)


def demo_snapshots(
    *,
    assets: list[str],
    accounts: list[str],
    days: int,
    interval: int,
    seed: int,
    now: datetime | None = None,
) -> Iterator[Snapshot]:
    """Yield snapshots on the interval grid for the last `days`, oldest first."""
    now = now or datetime.now(UTC)
    end = int(now.timestamp()) // interval * interval
    start = end - days * DAY + interval
    market = DemoMarket(seed, interval)
    for moment in range(start, end + 1, interval):
        timestamp = datetime.fromtimestamp(moment, UTC)
        for asset in assets:
            price = market.price(asset, moment)
            for account in accounts:
                yield Snapshot(
                    account=account,
                    asset=asset,
                    timestamp=timestamp,
                    amount=market.amount(account, asset, moment),
                    price=price,
                )


def snapshot_count(*, assets: list[str], accounts: list[str], days: int, interval: int) -> int:
    return len(assets) * len(accounts) * (days * DAY // interval)

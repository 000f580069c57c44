"""The bank: customers (people and businesses), their accounts and their everyday transactions.

Spending is tied to each customer's declared income so that politically exposed persons spend
about what they earn; businesses bank their cash takings, which is what makes the cash rules see
some honest look-alikes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from flagstone.generate import _ids
from flagstone.generate._time import DAYS, HOURS_BANK, WEEK_BANK, sample_times

# Export type codes and the canonical kinds the mapping turns them into.
KIND_CODES = {
    "KARTE": "payment",
    "UEBERW": "transfer",
    "BAR_EIN": "cash_deposit",
    "BAR_AUS": "cash_withdrawal",
    "GUTSCHR": "credit",
}
CODES = tuple(KIND_CODES)
PAYMENT, TRANSFER, DEPOSIT, WITHDRAWAL, CREDIT = range(5)
SPENDING = (PAYMENT, TRANSFER, WITHDRAWAL)  # what the PEP rule adds up (credits are income)

# Share of each kind per customer type (row 0 person, row 1 business).
KIND_MIX = np.array([[0.56, 0.17, 0.03, 0.14, 0.10], [0.52, 0.15, 0.10, 0.05, 0.18]])
# Median amount in euro and log-normal spread per type and kind (credits are set from income).
MEDIAN = np.array([[28.0, 160.0, 250.0, 110.0, 0.0], [140.0, 1100.0, 1000.0, 500.0, 2500.0]])
SIGMA = np.array([[0.9, 1.0, 0.8, 0.7, 0.3], [1.0, 1.0, 0.6, 0.8, 0.9]])
BIG_PURCHASE_P = 0.004
# A few cash-heavy businesses (restaurants, kiosks) bank takings of about 9,000 euro, just under the
# reporting threshold without meaning to: the structuring rule's honest false positives.
CASH_HEAVY_SHARE = 0.01
CASH_HEAVY_DEPOSIT = 8_900.0  # a car or a house deposit: a rare large transfer by a person

EVENTS_PER_CUSTOMER = 140
N_BRANCHES = 60
N_ATMS = 300
COUNTRIES = np.array(["DE", "DE", "DE", "DE", "DE", "DE", "AT", "NL", "FR", "PL"])

CHANNELS = ("card", "online", "branch", "atm")
TERMINALS = ("", *(f"BR-{i:03d}" for i in range(N_BRANCHES)), *(f"ATM-{i:04d}" for i in range(N_ATMS)))
REFERENCES = (
    "Card payment",
    *("Rent", "Invoice", "Transfer", "Savings plan", "Insurance", "Utilities"),  # people's transfers
    *("Invoice", "Supplier payment", "Salaries", "Tax", "Rent", "Leasing"),  # businesses' transfers
    "Cash deposit",
    "Daily takings",
    "Cash withdrawal",
    "Salary",
    "Customer payment",
)


@dataclass
class EntityRow:
    account: str
    kind: str  # "P" | "O", mapped to person / organisation
    pep: bool
    income: int | None  # whole euros a month; businesses declare none
    country: str


@dataclass
class Bank:
    """Background customers plus planted ones allocated later through ``new_account``."""

    accounts: list[str]
    is_org: np.ndarray
    cum_weight: np.ndarray
    wealth: np.ndarray
    income: np.ndarray  # euro per month, 0 for businesses
    credit_median: np.ndarray
    cash_heavy: np.ndarray
    pep: np.ndarray
    country: np.ndarray
    n_payees: np.ndarray
    payee_base: np.ndarray
    merchant_base: np.ndarray
    employer: np.ndarray
    branch: np.ndarray
    externals: list[str]
    merchants: list[str]
    planted: list[EntityRow] = field(default_factory=list)
    _arrays: dict[str, pa.Array] = field(default_factory=dict)
    _new_externals: int = 0

    @classmethod
    def build(cls, rng: np.random.Generator, n_events: int) -> Bank:
        n = max(150, n_events // EVENTS_PER_CUSTOMER)
        is_org = rng.random(n) < 0.12
        weight = np.where(is_org, rng.gamma(6.0, 0.6, n), rng.gamma(2.0, 0.5, n))
        wealth = np.exp(rng.normal(0.0, np.where(is_org, 0.4, 0.35)))
        rate = n_events * weight / weight.sum() / DAYS  # events a day
        typ = is_org.astype(int)
        mean = MEDIAN * np.exp(SIGMA**2 / 2)
        spend = rate * 30 * wealth * sum(KIND_MIX[typ, k] * mean[typ, k] for k in SPENDING)
        ratio = rng.uniform(0.45, 1.1, n)
        pep = ~is_org & (rng.random(n) < 0.015)
        # Office holders declare at least a modest salary; other people at least a part-time wage.
        income = np.where(is_org, 0, np.clip(np.round(spend / ratio / 50) * 50, np.where(pep, 2_500, 800), 30_000))
        credits_a_month = np.maximum(rate * 30 * KIND_MIX[typ, CREDIT], 0.2)
        credit_median = np.where(is_org, MEDIAN[1, CREDIT] * wealth, income / credits_a_month)
        n_ext = max(2_000, 2 * n)
        return cls(
            accounts=[_ids.own_account(i) for i in range(n)],
            is_org=is_org,
            cum_weight=np.cumsum(weight) / weight.sum(),
            wealth=wealth,
            income=income,
            credit_median=credit_median,
            cash_heavy=is_org & (rng.random(n) < CASH_HEAVY_SHARE),
            pep=pep,
            country=rng.choice(COUNTRIES, n),
            n_payees=np.where(is_org, rng.integers(5, 25, n), rng.integers(3, 9, n)),
            payee_base=rng.integers(0, n_ext, n),
            merchant_base=rng.integers(0, 100_000, n),
            employer=rng.integers(0, n_ext, n),
            branch=rng.integers(0, N_BRANCHES, n),
            externals=[_ids.external_account(i) for i in range(n_ext)],
            merchants=[_ids.merchant(i) for i in range(max(1_000, n // 2))],
        )

    # -- planted customers -------------------------------------------------------------------

    def new_account(self, *, pep: bool = False, income: int | None = 3_000, org: bool = False) -> str:
        account = _ids.own_account(len(self.accounts) + len(self.planted))
        self.planted.append(EntityRow(account, "O" if org else "P", pep, None if org else income, "DE"))
        return account

    def new_external(self) -> str:
        """A never-seen account at another bank, e.g. a money mule's."""
        self._new_externals += 1
        return _ids.external_account(len(self.externals) + self._new_externals)

    def entity_rows(self) -> list[EntityRow]:
        rows = [
            EntityRow(
                a,
                "O" if self.is_org[i] else "P",
                bool(self.pep[i]),
                None if self.is_org[i] else int(self.income[i]),
                str(self.country[i]),
            )
            for i, a in enumerate(self.accounts)
        ]
        return rows + self.planted

    # -- background transactions -------------------------------------------------------------

    def _pool(self, name: str, values: list[str]) -> pa.Array:
        if name not in self._arrays:
            self._arrays[name] = pa.array(values, type=pa.string())
        return self._arrays[name]

    def background(self, rng: np.random.Generator, day0: int, day1: int, n: int) -> dict[str, object]:
        """``n`` ordinary transactions in days [day0, day1), as columns (strings as Arrow arrays)."""
        ts = sample_times(rng, day0, day1, n, HOURS_BANK, WEEK_BANK)
        who = np.minimum(np.searchsorted(self.cum_weight, rng.random(n)), len(self.accounts) - 1)
        typ = self.is_org[who].astype(int)
        kind = (rng.random(n)[:, None] > np.cumsum(KIND_MIX, axis=1)[typ]).sum(axis=1)
        kind = np.minimum(kind, CREDIT)

        median = np.where(kind == CREDIT, self.credit_median[who], MEDIAN[typ, kind] * self.wealth[who])
        sigma = SIGMA[typ, kind]
        heavy = (kind == DEPOSIT) & self.cash_heavy[who]
        median, sigma = np.where(heavy, CASH_HEAVY_DEPOSIT, median), np.where(heavy, 0.1, sigma)
        euros = median * np.exp(sigma * rng.standard_normal(n))
        big = (kind == TRANSFER) & (typ == 0) & (rng.random(n) < BIG_PURCHASE_P)
        euros = np.where(big, rng.uniform(6_000, 40_000, n), euros)
        cents = np.round(euros * 100).astype(np.int64)
        # Cash comes in round sums; ATMs pay out multiples of ten.
        cash = (kind == WITHDRAWAL) | ((kind == DEPOSIT) & (typ == 0))
        cents = np.where(cash, np.maximum(np.round(cents / 1000), 2) * 1000, np.maximum(cents, 50))

        n_ext, n_m = len(self.externals), len(self.merchants)
        payee = (self.payee_base[who] + (self.n_payees[who] * rng.random(n) ** 1.5).astype(int)) % n_ext
        payee = np.where(rng.random(n) < 0.03, rng.integers(0, n_ext, n), payee)
        shop = (self.merchant_base[who] + (40 * rng.random(n) ** 2).astype(int)) % n_m
        shop = np.where(rng.random(n) < 0.2, rng.integers(0, n_m, n), shop)
        # Index into one pool: external accounts, then merchants, then "" for cash.
        counter = np.select(
            [kind == TRANSFER, kind == CREDIT, kind == PAYMENT],
            [payee, self.employer[who] % n_ext, n_ext + shop],
            n_ext + n_m,
        )

        u = rng.random(n)
        channel = np.select(
            [kind == PAYMENT, kind == TRANSFER, kind == DEPOSIT, kind == WITHDRAWAL],
            [
                np.where(u < 0.8, 0, 1),
                np.where(u < 0.9, 1, 2),
                np.where(u < 0.6, 2, 3),
                np.where(u < 0.9, 3, 2),
            ],
            1,
        )
        home = self.branch[who]
        atm = (home * 5 + rng.integers(0, 12, n)) % N_ATMS
        terminal = np.select([channel == 2, channel == 3], [1 + home, 1 + N_BRANCHES + atm], 0)
        r = rng.integers(0, 6, n)
        reference = np.select(
            [kind == PAYMENT, kind == TRANSFER, kind == DEPOSIT, kind == WITHDRAWAL],
            [np.zeros(n, int), np.where(typ == 1, 7 + r, 1 + r), 13 + typ, np.full(n, 15)],
            16 + typ,
        )
        return {
            "ts": ts,
            "account": self._pool("acct", self.accounts).take(pa.array(who)),
            "code": _pool_take(CODES, kind),
            "counter": self._pool("counter", [*self.externals, *self.merchants, ""]).take(pa.array(counter)),
            "cents": cents,
            "channel": _pool_take(CHANNELS, channel),
            "terminal": _pool_take(TERMINALS, terminal),
            "reference": _pool_take(REFERENCES, reference),
        }


def _pool_take(pool: tuple[str, ...], idx: np.ndarray) -> pa.Array:
    return pa.array(pool, type=pa.string()).take(pa.array(idx))

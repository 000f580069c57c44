"""Planted scenarios: for every shipped rule, cases that must fire and near misses that must not.

Each planted actor is new (no background activity), so what a rule sees for it is exactly the
scenario. Suspicious cases clear the rule's thresholds with a margin; decoys stop just short of
one threshold (one deposit too few, 2.5 times the income instead of 3, one vehicle short), are the
honest look-alike (a cook's cooker and timer, a courier's busiest day), or spread the same
activity over a little more than the rule's window. Windows are half-open, (t - W, t], so every
spacing below keeps at least an hour clear of the boundary. Cloned cards are planted as they are
(dozens of vehicles a day), not relative to the threshold, so that a backtest can choose it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flagstone.generate._bank import N_BRANCHES, Bank
from flagstone.generate._catalogue import COMPONENT_CATEGORIES, PRECURSOR_CATEGORIES, Product
from flagstone.generate._planted import Planted
from flagstone.generate._shop import STORES, Shop
from flagstone.generate._time import DAY_S, DAYS, HOUR_S, START_S
from flagstone.generate._transit import FARE_CENTS, PRODUCTS, Transit

# The parameters of the shipped packs that the scenarios are planted against; a test checks them
# against packs/*/*.yaml, so a changed threshold cannot silently turn decoys into hits.
PACK_PARAMS: dict[str, dict[str, object]] = {
    "aml.structuring": {"threshold": 10000, "band": 0.10, "min_deposits": 3, "window": "7d"},
    "aml.cash_velocity": {"min_total": 25000, "min_count": 5, "window": "3d"},
    "aml.many_counterparties": {"min_counterparties": 8, "window": "2d"},
    "pep.spending_above_income": {"income_multiple": 3, "window": "30d"},
    "precursors.basket": {"min_categories": 3, "window": "7d"},
    "precursors.large_quantity": {"max_quantity": 10},
    "transit.cloned_card": {"min_vehicles": 36, "window": "1d"},
}
RULE_IDS: tuple[str, ...] = tuple(PACK_PARAMS)

_S = PACK_PARAMS["aml.structuring"]
THRESHOLD = int(_S["threshold"])  # type: ignore[call-overload]
BAND_LOW = round((1 - float(_S["band"])) * THRESHOLD)  # type: ignore[arg-type]
MIN_DEPOSITS = int(_S["min_deposits"])  # type: ignore[call-overload]
CASH_TOTAL = int(PACK_PARAMS["aml.cash_velocity"]["min_total"])  # type: ignore[call-overload]
CASH_COUNT = int(PACK_PARAMS["aml.cash_velocity"]["min_count"])  # type: ignore[call-overload]
MIN_CPS = int(PACK_PARAMS["aml.many_counterparties"]["min_counterparties"])  # type: ignore[call-overload]
PEP_MULTIPLE = float(PACK_PARAMS["pep.spending_above_income"]["income_multiple"])  # type: ignore[arg-type]
MIN_CATEGORIES = int(PACK_PARAMS["precursors.basket"]["min_categories"])  # type: ignore[call-overload]
MAX_QUANTITY = int(PACK_PARAMS["precursors.large_quantity"]["max_quantity"])  # type: ignore[call-overload]
MIN_VEHICLES = int(PACK_PARAMS["transit.cloned_card"]["min_vehicles"])  # type: ignore[call-overload]
CLONED_VEHICLES = (40, 121)  # vehicles of a card shared by a dozen people or more in a day: low, high (exclusive)

# Oxidiser-plus-fuel combinations of the kind the Commission's guidelines describe.
PRECURSOR_COMBOS = (
    ("precursor.hydrogen_peroxide", "precursor.acetone", "precursor.sulphuric_acid"),
    ("precursor.ammonium_nitrate", "precursor.aluminium_powder", "precursor.nitromethane"),
    ("precursor.potassium_chlorate", "precursor.sulphuric_acid", "precursor.magnesium_powder"),
    ("precursor.hexamine", "precursor.nitric_acid", "precursor.hydrogen_peroxide"),
    ("precursor.potassium_nitrate", "precursor.aluminium_powder", "precursor.sodium_chlorate"),
)


@dataclass
class World:
    rng: np.random.Generator
    bank: Bank
    shop: Shop
    transit: Transit
    planted: Planted

    # -- small helpers shared by the scenarios ---------------------------------------------

    def pick(self, items: list[str] | tuple[str, ...], k: int) -> list[str]:
        return [str(x) for x in self.rng.choice(list(items), size=k, replace=False)]

    def product(self, category: str) -> Product:
        options = self.shop.products_in(category)
        return options[int(self.rng.integers(0, len(options)))]

    def ordinary(self) -> Product:
        idx, _ = self.shop.by_group["ordinary"]
        return self.shop.products[int(idx[self.rng.integers(0, len(idx))])]

    def store(self) -> str:
        return STORES[int(self.rng.integers(0, len(STORES)))]

    def branch(self) -> str:
        return f"BR-{int(self.rng.integers(0, N_BRANCHES)):03d}"

    def spread(self, start: int, n: int, within_s: float) -> list[int]:
        """``n`` sorted times from ``start`` within ``within_s`` seconds, the first at ``start``."""
        rest = np.sort(self.rng.uniform(0, within_s, n - 1)) if n > 1 else np.array([])
        return [start, *(start + int(x) for x in rest)]

    def gaps(self, start: int, n: int, lo_s: float, hi_s: float) -> list[int]:
        """``n`` times, consecutive ones ``lo_s`` to ``hi_s`` seconds apart."""
        steps = self.rng.uniform(lo_s, hi_s, n - 1)
        return [start, *(start + int(x) for x in np.cumsum(steps))]

    def cash_amounts(self, n: int, lo: int, hi: int) -> list[int]:
        """Whole-ten euro amounts in [lo, hi], never inside the structuring band."""
        out: list[int] = []
        while len(out) < n:
            euros = int(self.rng.integers(lo // 10, hi // 10 + 1)) * 10
            if not BAND_LOW <= euros < THRESHOLD:
                out.append(euros)
        return out

    def split(self, total: float, alphas: list[float]) -> list[float]:
        return [float(x) for x in total * self.rng.dirichlet(alphas)]


Builder = Callable[[World, int, int], None]

# -- aml.structuring -------------------------------------------------------------------------


def _deposits(w: World, sc: int, times: list[int], euros: list[int]) -> None:
    account = w.bank.new_account(income=int(w.rng.integers(30, 70)) * 50)
    for ts, e in zip(times, euros, strict=True):
        w.planted.bank_event(
            sc,
            ts,
            account,
            "BAR_EIN",
            e * 100,
            channel="branch",
            terminal=w.branch(),
            reference="Cash deposit",
        )


def _in_band(w: World, n: int) -> list[int]:
    return [int(x) for x in w.rng.integers(BAND_LOW, THRESHOLD, n)]


def _business_hours(w: World, start: int, days: list[int]) -> list[int]:
    return [start + d * DAY_S + int(w.rng.integers(9 * HOUR_S, 17 * HOUR_S)) for d in days]


def structuring(w: World, sc: int, start: int) -> None:
    n = int(w.rng.integers(MIN_DEPOSITS, MIN_DEPOSITS + 4))
    days = sorted(int(d) for d in w.rng.choice(6, size=n, replace=False))  # within 5 days 8 hours
    _deposits(w, sc, _business_hours(w, start, days), _in_band(w, n))


def structuring_two(w: World, sc: int, start: int) -> None:
    days = sorted(int(d) for d in w.rng.choice(6, size=MIN_DEPOSITS - 1, replace=False))
    _deposits(w, sc, _business_hours(w, start, days), _in_band(w, MIN_DEPOSITS - 1))


def structuring_spread(w: World, sc: int, start: int) -> None:
    n = int(w.rng.integers(MIN_DEPOSITS, MIN_DEPOSITS + 2))
    # Any two consecutive deposits fall in one 7-day window, never three.
    _deposits(w, sc, w.gaps(start, n, 3.6 * DAY_S, 4.5 * DAY_S), _in_band(w, n))


def structuring_below_band(w: World, sc: int, start: int) -> None:
    n = int(w.rng.integers(MIN_DEPOSITS, MIN_DEPOSITS + 2))
    days = sorted(int(d) for d in w.rng.choice(5, size=n, replace=False))
    euros = [int(x) * 10 for x in w.rng.integers(BAND_LOW // 10 - 50, BAND_LOW // 10, n)]
    _deposits(w, sc, _business_hours(w, start, days), euros)


# -- aml.cash_velocity -----------------------------------------------------------------------


def _cash(w: World, sc: int, times: list[int], euros: list[int]) -> None:
    account = w.bank.new_account(income=int(w.rng.integers(40, 120)) * 50)
    for ts, e in zip(times, euros, strict=True):
        deposit = w.rng.random() < 0.6
        w.planted.bank_event(
            sc,
            ts,
            account,
            "BAR_EIN" if deposit else "BAR_AUS",
            e * 100,
            channel="branch",
            terminal=w.branch(),
            reference="Cash deposit" if deposit else "Cash withdrawal",
        )


def cash_velocity(w: World, sc: int, start: int) -> None:
    n = int(w.rng.integers(CASH_COUNT, CASH_COUNT + 5))
    euros = w.cash_amounts(n, 3_000, 15_000)
    while sum(euros) < 1.1 * CASH_TOTAL:
        euros = w.cash_amounts(n, 3_000, 15_000)
    _cash(w, sc, w.spread(start, n, 60 * HOUR_S), euros)


def cash_velocity_count(w: World, sc: int, start: int) -> None:
    n = CASH_COUNT - 1
    euros = w.cash_amounts(n, 6_000, 15_000)
    while sum(euros) < 1.2 * CASH_TOTAL:
        euros = w.cash_amounts(n, 6_000, 15_000)
    _cash(w, sc, w.spread(start, n, 48 * HOUR_S), euros)


def cash_velocity_total(w: World, sc: int, start: int) -> None:
    n = int(w.rng.integers(CASH_COUNT, CASH_COUNT + 3))
    euros: list[int] = []
    while not euros or sum(euros) >= 0.98 * CASH_TOTAL or any(BAND_LOW <= e < THRESHOLD for e in euros):
        target = w.rng.uniform(0.84, 0.97) * CASH_TOTAL
        euros = [max(100, int(x / 10) * 10) for x in w.split(target, [4.0] * n)]
    _cash(w, sc, w.spread(start, n, 48 * HOUR_S), euros)


def cash_velocity_spread(w: World, sc: int, start: int) -> None:
    n = int(w.rng.integers(CASH_COUNT, CASH_COUNT + 2))
    # Consecutive movements 19-23 hours apart: CASH_COUNT of them span more than three days.
    _cash(w, sc, w.gaps(start, n, 19 * HOUR_S, 23 * HOUR_S), w.cash_amounts(n, 5_000, 12_000))


# -- aml.many_counterparties -----------------------------------------------------------------


def _transfers(w: World, sc: int, times: list[int], payees: list[str]) -> None:
    account = w.bank.new_account(income=int(w.rng.integers(30, 80)) * 50)
    for ts, payee in zip(times, payees, strict=True):
        euros = int(w.rng.integers(150, 3_000))
        w.planted.bank_event(
            sc,
            ts,
            account,
            "UEBERW",
            euros * 100 + int(w.rng.integers(0, 100)),
            counter=payee,
            reference="Invoice",
        )


def _payees(w: World, distinct: int, repeats: int) -> list[str]:
    payees = [w.bank.new_external() for _ in range(distinct)]
    payees += [payees[int(i)] for i in w.rng.integers(0, distinct, repeats)]
    return [payees[int(i)] for i in w.rng.permutation(len(payees))]


def many_counterparties(w: World, sc: int, start: int) -> None:
    payees = _payees(w, int(w.rng.integers(MIN_CPS, MIN_CPS + 7)), int(w.rng.integers(0, 3)))
    _transfers(w, sc, w.spread(start, len(payees), 36 * HOUR_S), payees)


def many_counterparties_seven(w: World, sc: int, start: int) -> None:
    payees = _payees(w, MIN_CPS - 1, int(w.rng.integers(1, 3)))
    _transfers(w, sc, w.spread(start, len(payees), 40 * HOUR_S), payees)


def many_counterparties_spread(w: World, sc: int, start: int) -> None:
    payees = _payees(w, int(w.rng.integers(MIN_CPS + 1, MIN_CPS + 5)), 0)
    # 7-8 hours apart: MIN_CPS consecutive transfers span more than two days.
    _transfers(w, sc, w.gaps(start, len(payees), 7 * HOUR_S, 8 * HOUR_S), payees)


# -- pep.spending_above_income ---------------------------------------------------------------


def _spending(w: World, sc: int, start: int, *, pep: bool, multiple: float, days: float) -> None:
    income = int(w.rng.integers(50, 180)) * 50
    account = w.bank.new_account(pep=pep, income=income)
    n_pay, n_tr, n_wd = int(w.rng.integers(10, 26)), int(w.rng.integers(1, 4)), int(w.rng.integers(1, 4))
    kinds = ["KARTE"] * n_pay + ["UEBERW"] * n_tr + ["BAR_AUS"] * n_wd
    # Rounding withdrawals down keeps a decoy's total below its target, never above.
    parts = w.split(multiple * income, [1.0] * n_pay + [4.0] * n_tr + [1.0] * n_wd)
    order = w.rng.permutation(len(kinds))
    times = w.spread(start, len(kinds), days * DAY_S)
    for ts, i in zip(times, order, strict=True):
        kind, euros = kinds[int(i)], parts[int(i)]
        if kind == "KARTE":
            counter, cents, channel, ref = (
                w.bank.merchants[int(w.rng.integers(0, 50))],
                int(euros * 100),
                "card",
                "Card payment",
            )
        elif kind == "UEBERW":
            counter, cents, channel, ref = w.bank.new_external(), int(euros * 100), "online", "Transfer"
        else:
            counter, cents, channel, ref = "", max(1, int(euros / 10)) * 1000, "atm", "Cash withdrawal"
        w.planted.bank_event(
            sc,
            ts,
            account,
            kind,
            max(cents, 100),
            counter=counter,
            channel=channel,
            terminal=f"ATM-{int(w.rng.integers(0, 300)):04d}" if kind == "BAR_AUS" else "",
            reference=ref,
        )


def pep_spending(w: World, sc: int, start: int) -> None:
    _spending(w, sc, start, pep=True, multiple=w.rng.uniform(3.8, 7.5), days=w.rng.uniform(8, 24))


def pep_spending_under(w: World, sc: int, start: int) -> None:
    _spending(w, sc, start, pep=True, multiple=w.rng.uniform(2.2, 2.6), days=w.rng.uniform(8, 20))


def pep_spending_not_pep(w: World, sc: int, start: int) -> None:
    _spending(w, sc, start, pep=False, multiple=w.rng.uniform(4.0, 7.0), days=w.rng.uniform(8, 20))


# -- precursors ------------------------------------------------------------------------------


def _orders(w: World, sc: int, times: list[int], baskets: list[list[tuple[Product, int]]]) -> None:
    customer = w.shop.new_customer()
    store = w.store()
    for ts, lines in zip(times, baskets, strict=True):
        w.planted.shop_order(sc, ts, customer, lines, store)


def _baskets(w: World, lines: list[tuple[Product, int]], n_orders: int) -> list[list[tuple[Product, int]]]:
    """Deal ``lines`` into ``n_orders`` orders, each getting at least one, plus a few ordinary lines."""
    baskets: list[list[tuple[Product, int]]] = [[] for _ in range(n_orders)]
    for i, line in enumerate(lines):
        baskets[i if i < n_orders else int(w.rng.integers(0, n_orders))].append(line)
    for _ in range(int(w.rng.integers(0, 3))):
        baskets[int(w.rng.integers(0, n_orders))].append((w.ordinary(), int(w.rng.integers(1, 3))))
    return baskets


def _few(w: World) -> int:
    return int(w.rng.integers(1, 4))  # household quantities, well under MAX_QUANTITY


def _basket(w: World, sc: int, start: int, cats: list[str], within_days: float) -> None:
    n_orders = int(w.rng.integers(1, 4))
    lines = [(w.product(c), _few(w) if c.startswith("precursor.") or "bearings" in c else 1) for c in cats]
    _orders(w, sc, w.spread(start, n_orders, within_days * DAY_S), _baskets(w, lines, n_orders))


def _k(w: World) -> int:
    return MIN_CATEGORIES + int(w.rng.random() < 0.3)


def basket_mixed(w: World, sc: int, start: int) -> None:
    # Precursors and device components together (peroxide, a timer, ball bearings): the purchase
    # that two baskets counted apart would each see only part of.
    k = _k(w)
    n_components = int(w.rng.integers(1, min(k - 1, len(COMPONENT_CATEGORIES)) + 1))
    cats = w.pick(PRECURSOR_CATEGORIES, k - n_components) + w.pick(COMPONENT_CATEGORIES, n_components)
    _basket(w, sc, start, w.pick(cats, len(cats)), 6)


def basket_precursors(w: World, sc: int, start: int) -> None:
    k = _k(w)
    if w.rng.random() < 0.6:
        cats = list(PRECURSOR_COMBOS[int(w.rng.integers(0, len(PRECURSOR_COMBOS)))])
        cats += w.pick([c for c in PRECURSOR_CATEGORIES if c not in cats], k - len(cats))
    else:
        cats = w.pick(PRECURSOR_CATEGORIES, k)
    _basket(w, sc, start, w.pick(cats, len(cats)), 4)


def basket_components(w: World, sc: int, start: int) -> None:
    _basket(w, sc, start, w.pick(COMPONENT_CATEGORIES, min(_k(w), len(COMPONENT_CATEGORIES))), 6)


def basket_two(w: World, sc: int, start: int) -> None:
    if w.rng.random() < 0.5:
        # A cook's order: a pressure cooker and a timer with some kitchen things.
        lines = [(w.product("component.pressure_cooker"), 1), (w.product("component.timer"), 1)]
        lines += [(w.product(c), 1) for c in w.pick(("kitchen.utensils", "kitchen.cookware", "grocery.produce"), 2)]
        _orders(w, sc, [start], [lines])
        return
    cats = w.pick((*PRECURSOR_CATEGORIES, *COMPONENT_CATEGORIES), MIN_CATEGORIES - 1)
    lines = [(w.product(c), _few(w)) for c in cats]
    lines += [(w.product(cats[int(w.rng.integers(0, len(cats)))]), _few(w)) for _ in range(w.rng.integers(0, 3))]
    n_orders = int(w.rng.integers(1, 3))
    _orders(w, sc, w.spread(start, n_orders, 3 * DAY_S), _baskets(w, lines, n_orders))


def basket_spread(w: World, sc: int, start: int) -> None:
    cats = w.pick(PRECURSOR_CATEGORIES, MIN_CATEGORIES - 1) + w.pick(COMPONENT_CATEGORIES, 1)
    # One category per order, 3.8-5 days apart: the first and third are over seven days apart.
    times = w.gaps(start, len(cats), 3.8 * DAY_S, 5.0 * DAY_S)
    _orders(w, sc, times, [[(w.product(c), _few(w) if c.startswith("precursor.") else 1)] for c in w.pick(cats, 3)])


_BULK = (
    "precursor.ammonium_nitrate",
    "precursor.calcium_ammonium_nitrate",
    "precursor.hydrogen_peroxide",
    "precursor.acetone",
    "precursor.potassium_nitrate",
    "precursor.sodium_chlorate",
)


def _one_order(w: World, sc: int, start: int, line: tuple[Product, int]) -> None:
    extra = [(w.ordinary(), int(w.rng.integers(1, 3))) for _ in range(int(w.rng.integers(0, 3)))]
    _orders(w, sc, [start], [[line, *extra]])


def large_quantity(w: World, sc: int, start: int) -> None:
    qty = int(w.rng.integers(MAX_QUANTITY + 2, MAX_QUANTITY + 50))
    _one_order(w, sc, start, (w.product(w.pick(_BULK, 1)[0]), qty))


def large_quantity_under(w: World, sc: int, start: int) -> None:
    qty = int(w.rng.integers(MAX_QUANTITY - 2, MAX_QUANTITY))
    _one_order(w, sc, start, (w.product(w.pick(_BULK, 1)[0]), qty))


def large_quantity_ordinary(w: World, sc: int, start: int) -> None:
    category = w.pick(("garden.soil", "grocery.beverages", "diy.fasteners"), 1)[0]
    _one_order(w, sc, start, (w.product(category), int(w.rng.integers(20, 51))))


# -- transit.cloned_card ---------------------------------------------------------------------


def _taps(w: World, sc: int, times: list[int], vehicles: list[str]) -> None:
    card = w.transit.new_card()
    for ts, vehicle in zip(times, vehicles, strict=True):
        w.planted.tap(sc, ts, card, vehicle, PRODUCTS[1], int(FARE_CENTS[1]))


def _vehicles(w: World, distinct: int, repeats: int) -> list[str]:
    chosen = w.pick(w.transit.vehicles, distinct)
    chosen += [chosen[int(i)] for i in w.rng.integers(0, distinct, repeats)]
    return [chosen[int(i)] for i in w.rng.permutation(len(chosen))]


def cloned_card(w: World, sc: int, start: int) -> None:
    # A cloned card is used by many people at once: dozens of vehicles a day, whatever the threshold.
    vehicles = _vehicles(w, int(w.rng.integers(*CLONED_VEHICLES)), int(w.rng.integers(0, 6)))
    _taps(w, sc, w.spread(start, len(vehicles), 20 * HOUR_S), vehicles)


def cloned_card_one_short(w: World, sc: int, start: int) -> None:
    vehicles = _vehicles(w, MIN_VEHICLES - 1, int(w.rng.integers(0, 3)))
    _taps(w, sc, w.spread(start, len(vehicles), 20 * HOUR_S), vehicles)


def cloned_card_courier(w: World, sc: int, start: int) -> None:
    # A courier's busiest day: a long shift of vehicles for work, plus the rides home and out.
    vehicles = _vehicles(w, int(w.rng.integers(14, 19)) + int(w.rng.integers(2, 5)), int(w.rng.integers(0, 3)))
    _taps(w, sc, w.spread(start, len(vehicles), 15 * HOUR_S), vehicles)


def cloned_card_spread(w: World, sc: int, start: int) -> None:
    vehicles = _vehicles(w, int(w.rng.integers(20, 27)), 0)
    # 3.1-3.6 hours apart: at most eight taps in any 24 hours, all of them within four days.
    _taps(w, sc, w.gaps(start, len(vehicles), 3.1 * HOUR_S, 3.6 * HOUR_S), vehicles)


# -- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    suspicious: Builder | tuple[tuple[str, Builder], ...]  # one builder, or named variants in turn
    decoys: dict[str, Builder]
    days: int  # how long a scenario may last, so it is placed to end inside the span


PLANS: dict[str, Plan] = {
    "aml.structuring": Plan(
        structuring,
        {
            "two-deposits": structuring_two,
            "spread-out": structuring_spread,
            "below-band": structuring_below_band,
        },
        10,
    ),
    "aml.cash_velocity": Plan(
        cash_velocity,
        {
            "four-movements": cash_velocity_count,
            "total-short": cash_velocity_total,
            "spread-out": cash_velocity_spread,
        },
        7,
    ),
    "aml.many_counterparties": Plan(
        many_counterparties,
        {"seven-payees": many_counterparties_seven, "spread-out": many_counterparties_spread},
        5,
    ),
    "pep.spending_above_income": Plan(
        pep_spending, {"under-multiple": pep_spending_under, "not-pep": pep_spending_not_pep}, 25
    ),
    "precursors.basket": Plan(
        # Half the baskets mixed, the rest precursors only or components only.
        (
            ("mixed", basket_mixed),
            ("precursors", basket_precursors),
            ("mixed", basket_mixed),
            ("components", basket_components),
        ),
        {"two-categories": basket_two, "spread-out": basket_spread},
        11,
    ),
    "precursors.large_quantity": Plan(
        large_quantity, {"just-under": large_quantity_under, "ordinary-bulk": large_quantity_ordinary}, 1
    ),
    "transit.cloned_card": Plan(
        cloned_card,
        {"one-short": cloned_card_one_short, "courier": cloned_card_courier, "spread-out": cloned_card_spread},
        4,
    ),
}
assert set(PLANS) == set(PACK_PARAMS)


def scenario_counts(events: int) -> tuple[int, int]:
    """Suspicious and decoy scenarios per rule: 24 and 12 per million events, at least 3 and 2.

    Linear in size, like the background's honest false positives, so precision does not depend
    on how many events are generated.
    """
    suspicious = max(3, round(24 * events / 1_000_000))
    return suspicious, max(2, -(-suspicious // 2))


def plant_all(w: World, events: int) -> None:
    """Plant every rule's scenarios at random times (whole hours, so nothing sits on a window edge)."""
    n_susp, n_decoy = scenario_counts(events)
    for rule_id, plan in PLANS.items():
        variants = list(plan.decoys.items())
        kinds = plan.suspicious if isinstance(plan.suspicious, tuple) else (("", plan.suspicious),)
        jobs: list[tuple[str, str, Builder]] = []
        for k in range(n_susp):
            name, builder = kinds[k % len(kinds)]
            jobs.append((f"{rule_id}/s{k + 1:03d}" + (f"-{name}" if name else ""), "suspicious", builder))
        for k in range(n_decoy):
            name, builder = variants[k % len(variants)]
            jobs.append((f"{rule_id}/d{k + 1:03d}-{name}", "decoy", builder))
        for scenario_id, label, builder in jobs:
            day = int(w.rng.integers(1, DAYS - plan.days - 1))
            start = START_S + day * DAY_S + int(w.rng.integers(6, 18)) * HOUR_S
            builder(w, w.planted.scenario(scenario_id, rule_id, label), start)

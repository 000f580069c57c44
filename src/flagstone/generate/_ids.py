"""Raw identifiers as real exports carry them: IBANs, customer numbers, NFC card UIDs, fleet numbers.

Each maps a dense index to a stable, unique, scrambled-looking string, so planted actors drawn from
indices past the background population look exactly like everybody else.
"""

from __future__ import annotations

import string

_LETTERS = {c: str(10 + i) for i, c in enumerate(string.ascii_uppercase)}
# An affine map modulo a prime scatters consecutive indices; the prime exceeds every population.
_PRIME = 9_999_999_967


def _scramble(i: int, salt: int) -> int:
    return (i * 7_919_731 + salt * 104_729 + 1_234_567) % _PRIME


def iban(country: str, bban: str) -> str:
    """An IBAN with valid ISO 13616 check digits, so it survives any validator a bank export had."""
    digits = "".join(_LETTERS.get(c, c) for c in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def own_account(i: int) -> str:
    """Accounts of the demo bank (bank code 70050000)."""
    return iban("DE", f"70050000{_scramble(i, 1):010d}")


_FOREIGN = (
    ("DE", "10020030", 10),
    ("DE", "20041155", 10),
    ("AT", "20111", 11),
    ("NL", "ABNA", 10),
    ("FR", "3000600001", 13),
)


def external_account(i: int) -> str:
    """Accounts at other banks: payees, employers, mule accounts."""
    country, bank, width = _FOREIGN[i % len(_FOREIGN)]
    number = _scramble(i, 2) % 10**width
    bban = f"{bank}{number:0{width}d}" + ("97" if country == "FR" else "")
    return iban(country, bban)


# Scrambles below are never reduced further, which keeps every identifier unique.


def merchant(i: int) -> str:
    return f"MRC{_scramble(i, 3):010d}"


def customer(i: int) -> str:
    return f"C{_scramble(i, 4):010d}"


def card(i: int) -> str:
    """A 7-byte NFC UID as 14 hex digits; NXP's manufacturer byte 04 first."""
    return f"04{_scramble(i, 5) * 2_654_435_761 % 2**48:012X}"

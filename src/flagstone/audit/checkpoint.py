"""A signed checkpoint: the statement that the log's tree of ``size`` entries has ``root``, at ``ts``."""

from __future__ import annotations

import json
from dataclasses import dataclass

STATEMENT = "flagstone-audit-checkpoint/v1"


def checkpoint_bytes(size: int, root_hex: str, ts: str) -> bytes:
    return f"{STATEMENT}\n{size}\n{root_hex}\n{ts}\n".encode("ascii")


@dataclass(frozen=True)
class Checkpoint:
    size: int
    root: str
    ts: str
    key_id: str
    signature: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        obj = json.loads(text)
        return cls(int(obj["size"]), str(obj["root"]), str(obj["ts"]), str(obj["key_id"]), str(obj["signature"]))

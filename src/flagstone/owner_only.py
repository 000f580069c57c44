"""Files and folders readable by their owner only: 0600 files, 0700 folders.

Everything Flagstone keeps holds personal data: the store (pseudonymised events are still personal
data, and it holds the encrypted identities and quarantined records), the keys, the case database,
the audit key, the scoring service's intake log, and what is exported from them (Parquet, alerts,
reports). So a Flagstone process masks group and other permission bits for every file it creates
(:func:`owner_only_umask`: the command line does it first thing, and opening a store does it too,
because DuckDB creates its WAL and temporary files itself, later), and opening a store tightens
the store and every ``<store>.*`` file and folder beside it that an older Flagstone, or a copy,
left readable by others (:func:`tighten_store`). Sharing an export is a deliberate act (``chmod``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

OTHERS = 0o077  # group and other permission bits


def owner_only_umask() -> None:
    """From now on this process creates files 0600 and folders 0700 (at most)."""
    os.umask(os.umask(OTHERS) | OTHERS)


def tighten(path: str | Path) -> int | None:
    """Take group and other permissions off ``path``; its old mode if that changed anything.

    Symbolic links are followed (a key file may live elsewhere on purpose); a file we do not own
    cannot be changed and raises ``PermissionError``.
    """
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if not mode & OTHERS:
        return None
    os.chmod(path, mode & ~OTHERS)
    return mode


def private_output(path: str | Path) -> Path:
    """An output file about to be written: if an earlier run left it readable by others, it is made
    owner-only first (overwriting keeps a file's mode); a new one gets the umask's 0600."""
    path = Path(path)
    owner_only_umask()
    if path.exists():
        tighten(path)
    return path


def beside_store(store_path: str | Path) -> list[Path]:
    """The store and every file and folder Flagstone keeps beside it (``<store>.wal``, ``.key``,
    ``.keys``, ``.cases.sqlite``, ``.audit-key``, ``.intake/`` ...), folders' contents included."""
    store = Path(store_path)
    found = [store] if store.exists() else []
    folder = store.parent
    try:
        siblings = sorted(p for p in folder.iterdir() if p.name.startswith(store.name + "."))
    except OSError:
        return found
    for p in siblings:
        found.append(p)
        if p.is_dir() and not p.is_symlink():
            for root, dirs, files in os.walk(p):
                found += [Path(root, n) for n in sorted(dirs + files)]
    return found


def tighten_store(store_path: str | Path) -> list[str]:
    """Make the store and everything beside it owner-only; one line per change (or failure) to report."""
    notes = []
    for path in beside_store(store_path):
        try:
            old = tighten(path)
        except FileNotFoundError:  # removed meanwhile (a checkpointed WAL, an absorbed segment)
            continue
        except OSError as exc:
            notes.append(f"{path} is readable by other users and cannot be made private: {exc.strerror}")
            continue
        if old is not None:
            notes.append(
                f"{path} was readable by other users (mode {old:04o}); now {old & ~OTHERS:04o} "
                "(whoever could read it may have copied it)"
            )
    return notes

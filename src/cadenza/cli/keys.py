"""cadenza-keys: make, list and revoke the service's API keys.

    cadenza-keys new --name platform --scopes generate recommend --file keys.yaml
    cadenza-keys new --name app-user-7f3a --scopes recommend --listener 42 --file keys.yaml
    cadenza-keys new --name web-backend --scopes generate --max-requests 64 --file keys.yaml
    cadenza-keys list --file keys.yaml
    cadenza-keys revoke --name app-user-7f3a --file keys.yaml

`new` prints the key once, on stdout; the file keeps only its SHA-256 (cadenza.serve.auth).
Without --file, `new` prints the entry to put in the file or in CADENZA_API_KEYS yourself.
The file is written atomically and readable by its owner only. A running service reads its keys
at start-up: restart it after a change.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from cadenza.atomic import write_atomically
from cadenza.errors import ConfigError
from cadenza.serve.auth import SCOPES, key_entry, new_key, parse_keys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cadenza-keys", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="make a key (printed once) and store its digest")
    new.add_argument("--name", required=True, help="who holds it (unique; shown in logs)")
    new.add_argument("--scopes", nargs="+", required=True, choices=SCOPES)
    new.add_argument("--listener", default=None, help="bind it to this listener ID")
    new.add_argument("--max-requests", type=_at_least_one, default=None,
                     help="model requests it may have in flight at once (default: the "
                     "service's max_requests_per_key); e.g. a platform's backend key")  # fmt: skip
    new.add_argument("--file", type=Path, default=None, help="the keys file to add it to")
    listing = sub.add_parser("list", help="the keys in a file (names and scopes, no digests)")
    listing.add_argument("--file", type=Path, required=True)
    revoke = sub.add_parser("revoke", help="remove a key from a file")
    revoke.add_argument("--name", required=True)
    revoke.add_argument("--file", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        return {"new": _new, "list": _list, "revoke": _revoke}[args.command](args)
    except ConfigError as e:
        print(f"cadenza-keys: {e}", file=sys.stderr)
        return 2


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number >= 1, got {text!r}")
    return int(text)


def _names_listener(name: str, listener: str) -> bool:
    """Does a key's name spell out its listener's ID? A numeric ID (Last.fm's) as one of the
    name's words ("user-42"); any other with separators and case ignored ("Listener_42")."""
    if listener.isdigit():
        return listener in re.split(r"[^0-9]+", name)
    plain = re.compile(r"[^a-z0-9]")
    return plain.sub("", listener.lower()) in plain.sub("", name.lower())


def _entries(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    parse_keys(path.read_text(), f"{path}")  # a malformed file fails here, before any change
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    return list(data.get("keys", []) if isinstance(data, dict) else data)


def _write(path: Path, entries: list[dict]) -> None:
    """Atomically, owner-only (0600): the digests are not secret, but who holds which scope is
    nobody else's business."""
    import yaml

    header = "# cadenza-serve API keys: SHA-256 digests only (cadenza-keys new adds one)\n"
    write_atomically(path, header + yaml.safe_dump({"keys": entries}, sort_keys=False),
                     private=True)  # fmt: skip


def _new(args: argparse.Namespace) -> int:
    if args.listener is not None and _names_listener(args.name, str(args.listener)):
        raise ConfigError(f"--name {args.name!r} holds the listener's ID: a key's name is "
                          "written in the service's logs and job records, where a listener "
                          "appears only as a pseudonym; name the token another way (e.g. "
                          "app-user-7f3a)")  # fmt: skip
    key = new_key()
    entry = key_entry(args.name, key, sorted(set(args.scopes)), args.listener, args.max_requests)
    if args.file is None:
        print(key)
        print("# add to the keys file (or CADENZA_API_KEYS) under `keys:`:", file=sys.stderr)
        print(json.dumps(entry), file=sys.stderr)
        return 0
    entries = _entries(args.file)
    if any(e.get("name") == args.name for e in entries):
        raise ConfigError(f"{args.file} already has a key named {args.name!r}; revoke it first")
    _write(args.file, [*entries, entry])
    print(key)
    print(f"# {args.name}: {', '.join(entry['scopes'])}"
          f"{f', listener {args.listener}' if args.listener else ''}; stored as its SHA-256 in "
          f"{args.file}. This key is shown once.", file=sys.stderr)  # fmt: skip
    return 0


def _list(args: argparse.Namespace) -> int:
    for e in _entries(args.file):
        listener = f"  listener {e['listener']}" if e.get("listener") is not None else ""
        most = f"  max_requests {e['max_requests']}" if e.get("max_requests") else ""
        print(f"{e['name']}: {', '.join(e['scopes'])}{listener}{most}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    entries = _entries(args.file)
    kept = [e for e in entries if e.get("name") != args.name]
    if len(kept) == len(entries):
        raise ConfigError(f"{args.file} has no key named {args.name!r}")
    _write(args.file, kept)
    print(f"revoked {args.name}; restart the service to apply", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

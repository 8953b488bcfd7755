"""``vitrina kiosk``: run the kiosk app, render its screens, or hash an admin PIN.

Importing this module does not import Kivy.
"""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from vitrina.runtime.commands import CommandPlugin, Commands


def register(commands: Commands) -> None:
    """Add ``kiosk`` and ``bench kiosk``."""
    p = commands.add("kiosk", help="run the kiosk app (Kivy)")
    p.add_argument("--bundle", type=Path, default=None, help="bundle folder (overrides the config)")
    p.add_argument("--config", type=Path, default=None, help="kiosk TOML config")
    p.add_argument("--windowed", action="store_true", help="a normal window instead of locked-down full screen")
    p.add_argument(
        "--screenshot", type=Path, default=None, metavar="DIR", help="render every screen to PNGs in DIR and exit"
    )
    p.add_argument("--hash-pin", action="store_true", help="read a PIN and print its hash for admin_pin_hash")
    p.set_defaults(handler=_kiosk)

    b = commands.add_to("bench", "kiosk", help="touch-replay responsiveness of the kiosk app (offscreen)")
    b.add_argument("--bundle", required=True, type=Path)
    b.add_argument("--drawings", type=int, default=20, help="held-out drawings to replay")
    b.add_argument("--config", type=Path, default=None, help="kiosk TOML config (debounce, results)")
    b.set_defaults(handler=_bench_kiosk)


def _bench_kiosk(args: argparse.Namespace) -> int:
    import json

    from .config import KioskConfig, load_config
    from .tools.responsiveness import measure_responsiveness

    if args.drawings < 1:
        raise ValueError(f"--drawings must be >= 1, got {args.drawings}")
    config = load_config(args.config) if args.config else KioskConfig()
    print(json.dumps(measure_responsiveness(config, args.bundle, args.drawings), indent=1))
    return 0


def _kiosk(args: argparse.Namespace) -> int:
    from .config import KioskConfig, hash_pin, load_config

    if args.hash_pin:
        print(hash_pin(getpass.getpass("admin PIN (4-12 digits): ")))
        return 0
    # checked before Kivy is imported or a window opens: a bad config raises ConfigError
    # (a ValueError), which `vitrina` prints, exiting with status 2
    config = load_config(args.config) if args.config else KioskConfig()
    bundle = args.bundle or config.bundle
    if args.screenshot:
        from .tools.screenshots import screenshots

        for path in screenshots(config, bundle, args.screenshot):
            print(path)
        return 0
    from .main import run_kiosk

    run_kiosk(config, bundle, args.windowed)
    return 0


PLUGIN = CommandPlugin(
    name="kiosk", commands=("kiosk", "bench kiosk"), register=register, requires=("kivy",), extra="kiosk", order=50
)

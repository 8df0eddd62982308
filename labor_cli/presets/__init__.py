"""Option files shipped with labor (TOML, option names as keys), found by name or path."""

from __future__ import annotations

from pathlib import Path

from labor_cli.errors import LaborError, LaborUsageError

PRESETS = Path(__file__).parent


def read_config_file(path: Path) -> dict:
    """A TOML file, or the name of a preset shipped here (e.g. toy-warmup); keys use underscores."""
    path = Path(path)
    preset = PRESETS / f"{path}.toml"
    if not path.exists() and preset.is_file():
        path = preset
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise LaborUsageError("--config needs Python 3.11 or newer (tomllib)") from None
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle)
    except FileNotFoundError:
        known = ", ".join(p.stem for p in sorted(PRESETS.glob("*.toml")))
        raise LaborError(f"{path}: no such file (presets: {known})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LaborError(f"{path}: not valid TOML ({exc})") from None
    return {key.replace("-", "_"): value for key, value in values.items()}

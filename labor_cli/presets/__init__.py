"""Option files shipped with labor (TOML, option names as keys), found by name or path.

Which keys a file may hold, and what their values must be, is labor_cli/options.py's
``values_from_file``: this module only finds and reads the file."""

from __future__ import annotations

from pathlib import Path

from labor_cli.errors import LaborError, LaborUsageError

PRESETS = Path(__file__).parent


def read_config_file(path: Path) -> tuple[Path, dict]:
    """A TOML file, or the name of a preset shipped here (e.g. toy-warmup): the file read, and
    its values with keys spelt as option names (hyphens become underscores)."""
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
    except IsADirectoryError:
        raise LaborError(f"{path}: is a folder, expected a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LaborError(f"{path}: not valid TOML ({exc})") from None
    return path, {key.replace("-", "_"): value for key, value in values.items()}

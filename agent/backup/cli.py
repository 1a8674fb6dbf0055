"""Back up and restore the agent's state: the log dir, the data dir and ``.env``.

``python -m agent.backup create`` (``make backup``, also the default with no command) writes one archive
into BACKUP_DIR, then applies retention; ``list`` shows the archives; ``verify ARCHIVE`` checks one without
restoring it; ``restore ARCHIVE [--target DIR] [--force]`` puts it back: in LOG_DIR, the data dir and the
project ``.env``, or ``DIR/logs``, ``DIR/data`` and ``DIR/.env`` with ``--target``.

Exit codes (agent.cli's table): 0 success, 1 operational error (one line on stderr), 2 configuration error.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tarfile
from pathlib import Path
from typing import Callable

from agent.backup.create import create_backup
from agent.backup.layout import ARC_NAME, Paths, human_size, say
from agent.backup.restore import restore_backup, verify_backup
from agent.backup.retention import apply_retention, list_archives
from agent.cli import EXIT_CONFIG, EXIT_ERROR, EXIT_OK
from agent.config import DEFAULT_ENV_PATH, Settings, load_settings
from agent.errors import BackupError, ConfigError

COMMANDS = ("create", "list", "verify", "restore")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="config file (default: config.yaml in the project)")
    common.add_argument("--env-file", type=Path, default=DEFAULT_ENV_PATH,
                        help="the .env to read settings from, back up and restore (default: the project .env)")
    dirs = argparse.ArgumentParser(add_help=False)
    dirs.add_argument("--backup-dir", type=Path, help="where archives go (env BACKUP_DIR)")

    p = argparse.ArgumentParser(prog="python -m agent.backup", description=__doc__.split("\n\n")[0],
                                epilog="with no command: create")
    sub = p.add_subparsers(dest="command", metavar="{create,list,verify,restore}")
    c = sub.add_parser("create", parents=[common, dirs],
                       help="archive logs, data and .env into BACKUP_DIR, then apply retention")
    c.add_argument("--keep-days", type=int, help="delete archives older than this many days (env BACKUP_KEEP_DAYS)")
    sub.add_parser("list", parents=[common, dirs], help="list the archives in BACKUP_DIR")
    v = sub.add_parser("verify", parents=[common, dirs], help="check an archive without restoring it")
    v.add_argument("archive", help="a path, a file name in BACKUP_DIR, or 'latest'")
    r = sub.add_parser("restore", parents=[common, dirs], help="restore an archive (refuses to overwrite)")
    r.add_argument("archive", help="a path, a file name in BACKUP_DIR, or 'latest'")
    r.add_argument("--target", type=Path, help="restore under DIR (DIR/logs, DIR/data, DIR/.env) instead of in place")
    r.add_argument("--force", action="store_true",
                   help="move existing logs/data/.env aside to <name>.pre-restore-<timestamp>, then restore")
    return p


def _resolve_archive(arg: str, settings_loader: Callable[[], Settings]) -> Path:
    path = Path(arg)
    if arg != "latest" and path.exists():
        return path
    backup_dir = settings_loader().backup.dir
    if arg == "latest":
        archives = list_archives(backup_dir)
        if not archives:
            raise BackupError(f"no backups in {backup_dir.absolute()}")
        return archives[-1].path
    if (backup_dir / arg).exists():
        return backup_dir / arg
    raise BackupError(f"archive not found: {arg} (nor in {backup_dir.absolute()})")


def _cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    paths = Paths.from_settings(settings, args.env_file)
    create_backup(paths)
    deleted = apply_retention(paths.backup_dir, settings.backup.keep_days)
    kept = len(list_archives(paths.backup_dir))
    say(f"retention: keep {settings.backup.keep_days} days (newest always kept): "
         f"{len(deleted)} deleted, {kept} kept")
    return EXIT_OK


def _cmd_list(settings: Settings) -> int:
    backup_dir = settings.backup.dir.absolute()
    archives = list_archives(backup_dir)
    if not archives:
        say(f"no backups in {backup_dir}")
        return EXIT_OK
    say(f"backups in {backup_dir} (keep {settings.backup.keep_days} days, newest always kept):")
    for info in reversed(archives):
        say(f"  {info.path.name}  {info.taken_at:%Y-%m-%d %H:%M:%S} UTC  {human_size(info.path.stat().st_size):>10}")
    return EXIT_OK


def _cmd_verify(archive: Path) -> int:
    staged = verify_backup(archive)
    files = staged.manifest["files"]
    say(f"ok: {archive} ({len(files)} files, checksums match; created {staged.manifest['created_at']}; "
         f"sections: {', '.join(ARC_NAME[s] for s in staged.sections) or 'none'}; "
         f"SQLite integrity ok: {', '.join(staged.databases) or 'no databases'})")
    return EXIT_OK


def _cmd_restore(args: argparse.Namespace, archive: Path, settings: Settings | None) -> int:
    if args.target is not None:
        base = args.target.absolute()
        dest = {"logs": base / "logs", "data": base / "data", "env": base / ".env"}
    else:
        assert settings is not None
        p = Paths.from_settings(settings, args.env_file)
        dest = {"logs": p.logs, "data": p.data, "env": p.env}
    result = restore_backup(archive, dest, force=args.force)
    say(f"restored {archive.name} (checksums verified):")
    for s, where in result.restored.items():
        say(f"  {ARC_NAME[s]:<5} -> {where}")
    if result.databases:
        say(f"  PRAGMA integrity_check ok: {', '.join(result.databases)}")
    say("next steps:")
    if "env" in result.restored:
        say("  - the restored .env holds secrets: keep it private (mode 0600); check its keys before starting")
    if args.target is not None:
        say(f"  - the files are under {args.target.absolute()}; to run on them, stop the agent and move them into "
             f"place, or set LOG_DIR={dest['logs']} and "
             f"DATABASE_PATH={dest['data'] / result.manifest['sources']['data'].get('database_file', 'agent.db')}")
    else:
        say("  - start the agent again: make run")
    if result.moved_aside:
        say("  - the previous files were kept: " + ", ".join(str(p) for p in result.moved_aside.values())
             + " (delete them once the restore looks right)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "create")
    args = _parser().parse_args(argv)

    def settings_loader() -> Settings:
        return load_settings(args.config, env_file=args.env_file,
                             overrides={("backup", "dir"): args.backup_dir,
                                        ("backup", "keep_days"): getattr(args, "keep_days", None)})

    try:
        if args.command == "restore":
            # With --target and an archive path, the current config is not needed: a broken .env
            # (perhaps the reason to restore) must not stand in the way.
            archive = _resolve_archive(args.archive, settings_loader)
            settings = None if args.target is not None else settings_loader()
            return _cmd_restore(args, archive, settings)
        if args.command == "verify":
            return _cmd_verify(_resolve_archive(args.archive, settings_loader))
        settings = settings_loader()
        if args.command == "list":
            return _cmd_list(settings)
        return _cmd_create(args, settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.command == "restore":
            print("hint: to restore a .env that breaks the config, use an archive path with --target DIR",
                  file=sys.stderr)
        return EXIT_CONFIG
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, sqlite3.Error, tarfile.TarError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR

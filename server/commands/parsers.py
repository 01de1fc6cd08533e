"""The people's commands' arguments (argparse only: building the parser imports nothing heavy, so `serve`
starts as fast as before)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Common = Callable[[argparse.ArgumentParser], None]
NAMES = ("import", "export", "restore", "ls", "show", "search", "stats")


def _importing(sub: argparse._SubParsersAction, common: Common) -> None:
    p = sub.add_parser("import", help="import files and folders (unchanged files are skipped; a changed one gets a "
                                      "new version; run again to resume)")
    common(p)
    p.add_argument("import_paths", nargs="+", metavar="PATH", help="files or directories")
    p.add_argument("--thread", dest="import_thread", help="thread id to file them under")
    p.add_argument("--type", dest="import_type", help="artifact type of every file (default: from its extension "
                                                      "and content: document, code, json, image, data, config, file)")
    p.add_argument("--tags", dest="import_tags", help="comma-separated tags for every file")
    p.add_argument("-r", "--recursive", dest="import_recursive", action="store_true",
                   help="descend into subdirectories (hidden ones are skipped)")
    p.add_argument("--glob", dest="import_globs", action="append", default=[],
                   help="only files whose name or relative path matches, e.g. '*.md' (repeatable)")


def _archive(sub: argparse._SubParsersAction, common: Common) -> None:
    p = sub.add_parser("export", help="write every version of the scope and its bytes to a portable archive")
    common(p)
    p.add_argument("archive_dest", metavar="DEST", help="a new directory, or a .tar / .tar.gz / .tgz file")
    p = sub.add_parser("restore", help="restore an archive (ids and versions kept; idempotent; re-indexed)")
    common(p)
    p.add_argument("archive_source", metavar="ARCHIVE", help="a directory or tar file `export` wrote")


def _lookup(sub: argparse._SubParsersAction, common: Common) -> None:
    p = sub.add_parser("ls", help="list artifacts (newest first)")
    common(p)
    p.add_argument("--thread", dest="ls_thread")
    p.add_argument("--type", dest="ls_types", help="comma-separated artifact types")
    p.add_argument("--tag", dest="ls_tags", action="append", help="only artifacts with this tag (repeatable)")
    p.add_argument("--status", dest="ls_status")
    p.add_argument("--all-versions", dest="ls_all_versions", action="store_true", help="every version, not just "
                                                                                        "the latest")
    p.add_argument("--limit", dest="ls_limit", type=int, default=50, help="page size, 1-200 (default 50)")
    p.add_argument("--cursor", dest="ls_cursor", help="next_cursor of the previous page")

    p = sub.add_parser("show", help="one artifact: its fields, versions and content")
    common(p)
    p.add_argument("show_id", metavar="ID", help="an artifact version id (art_…)")
    p.add_argument("--max-chars", dest="show_max_chars", type=int, default=2000,
                   help="content characters to print (default 2000; 0 for none)")

    p = sub.add_parser("search", help="hybrid search: ranked artifacts and the matching passage of each")
    common(p)
    p.add_argument("search_query", metavar="QUERY")
    p.add_argument("--top-k", dest="search_top_k", type=int, default=10)
    p.add_argument("--mode", dest="search_mode", choices=["hybrid", "semantic", "keyword"], default="hybrid")
    p.add_argument("--thread", dest="search_thread")
    p.add_argument("--type", dest="search_types", help="comma-separated artifact types")

    p = sub.add_parser("stats", help="counts by type and status, versions, storage, indexing backlog")
    common(p)


def add_parsers(sub: argparse._SubParsersAction, common: Common) -> None:
    _importing(sub, common)
    _archive(sub, common)
    _lookup(sub, common)
    for name in NAMES:
        parser = sub.choices[name]
        parser.add_argument("--json", dest="json_output", action="store_true",
                            help="print JSON only (for scripts); progress still goes to stderr")
        parser.add_argument("--org-id", help="scope: org (default from the settings, 'default')")
        parser.add_argument("--workspace-id", help="scope: workspace")
        parser.add_argument("--namespace-id", help="scope: namespace")

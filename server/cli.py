"""`artifact-mcp` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

import anyio

from server import logs
from server.settings import Settings

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
                       help="DuckDB file or ':memory:' (default DATA_DIR/catalog.duckdb)")
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
    serve.add_argument("--embedding-model", help="'default' (all-MiniLM-L6-v2, bundled, offline), 'hf:<name or "
                       "path>', 'hash:<dim>' or 'class:<module>:<Class>'; changing it re-indexes everything")

    gc = sub.add_parser("gc", help="remove expired artifacts and unreferenced blobs now, then exit")
    common(gc)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    skip = {"command"}
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
    from server.app import build_app, http_app

    app, runtime = build_app(settings)
    log.info("starting artifact-mcp (%s transport)", settings.transport)
    if settings.transport == "stdio":
        from server.stdio import run_stdio

        anyio.run(_until_signal, lambda: run_stdio(app))
        return
    import uvicorn

    config = uvicorn.Config(
        http_app(app, runtime, settings.transport), host=settings.host, port=settings.port, log_config=None,
        log_level=settings.log_level.lower(), lifespan="on",
    )
    path = "/mcp" if settings.transport == "http" else "/sse"
    log.info("listening on http://%s:%d%s", settings.host, settings.port, path)
    uvicorn.Server(config).run()


def gc(settings: Settings) -> None:
    from storage.sharing import StoreClient

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


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        raise SystemExit(2)
    settings = _settings(args)
    logs.configure(settings.log_level)
    if args.command == "serve":
        serve(settings)
    elif args.command == "gc":
        gc(settings)


if __name__ == "__main__":
    main()

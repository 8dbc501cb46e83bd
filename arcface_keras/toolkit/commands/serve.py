"""Serve a run's model and a gallery over HTTP: enrol, identify, verify, embed;
a page to try them at /, the API's schema at /docs.

    python scripts/serve.py saved_models/omniglot-arcface --gallery gallery.db
    curl -F image=@probe.png http://127.0.0.1:8000/identify

Needs the optional extra: pip install "arcface_keras[serve]".
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_folder", help="a finished run folder (its saved_model/ is used)")
    parser.add_argument("--gallery", required=True, help="the gallery store (created if absent; not an .npz)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-batching", action="store_true", help="one model call per request")
    parser.add_argument("--max-bytes", type=int, default=None, help="largest uploaded file (default 10 MiB)")
    parser.add_argument("--max-pixels", type=int, default=None, help="largest image, width × height (default 40 M)")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"argument --port: must lie in 1…65535. Received: {args.port}")
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as error:
        print(f"error: serve needs the optional extra: pip install \"arcface_keras[serve]\" ({error})", file=sys.stderr)
        return 2
    from arcface_keras.toolkit import service

    limits = {k: v for k, v in (("max_bytes", args.max_bytes), ("max_pixels", args.max_pixels)) if v is not None}
    for name, value in limits.items():
        if value < 1:
            parser.error(f"argument --{name.replace('_', '-')}: must be ≥ 1. Received: {value}")
    running = cli.run_or_explain(service.Service, args.run_folder, args.gallery, not args.no_batching, **limits)
    print(f"serving {args.run_folder} with gallery {args.gallery} at http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(service.create_app(running), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())

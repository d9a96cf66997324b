"""One module per subcommand; each defines `add_arguments(parser)` and `run(args) -> int`."""

# models.inference.BACKENDS, spelled out so that `--help` does not load torch (a test keeps them equal)
BACKENDS = ("eager", "onnxruntime")


def add_backend_argument(parser, default: str | None = "eager") -> None:
    """`--backend` of every command that runs a model over inputs (live, analyze, localize, eval);
    `default` None keeps the model as it was trained unless the flag is given (eval)."""
    unset = "the model as trained" if default is None else default
    parser.add_argument("--backend", choices=BACKENDS, default=default,
                        help="inference form (models.inference): eager (torch, BatchNorm folded) or "
                             "onnxruntime (the exported, checked graph on ONNX Runtime's CPU provider: "
                             "pip install 'soundlens[onnx]'; not SIRA with flow, not CUDA). "
                             f"Default: {unset}")

"""MLP Playground: NumPy multi-layer perceptrons trained on the server, streamed to the page."""

import os

# Small matrices are faster on one BLAS thread, and the server already runs one
# worker process per core: extra BLAS threads would only fight them for the CPU.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# The miner worker image: one replica per container, `miner run` against the Redis in REDIS_URL
# or REDIS_HOST. Needs BuildKit (the default builder since Docker Engine 23) for the bind mount.

# --- Build: the project as a wheel, and a wheel for each dependency ----------------------------
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY miner ./miner
# numba, llvmlite, numpy and hiredis all ship manylinux wheels for CPython 3.12, so neither this
# stage nor the final one needs a compiler.
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip wheel --wheel-dir /wheels /wheels/miner-*.whl

# --- Run: the wheels installed on a clean base, a non-root user, kernels compiled ahead ---------
FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/var/cache/miner/numba
# A numeric USER below, so that a runtime can tell it is not root without reading /etc/passwd.
RUN groupadd --gid 10001 miner \
    && useradd --no-log-init --uid 10001 --gid miner \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin miner \
    && install -d -o miner -g miner "$NUMBA_CACHE_DIR"
# The wheels are mounted for this one step, not copied, so that they take no layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/miner-*.whl
USER 10001:10001
# Compile every kernel this CPU runs into NUMBA_CACHE_DIR now, so that a container loads them in a
# fraction of a second instead of compiling for several seconds before its first hash. numba keys
# each cached kernel on the CPU it was compiled for: the index key (numba/core/caching.py,
# `_index_key`) holds the codegen's `magic_tuple()`, which is the target triple, the host CPU name
# and its feature flags (numba/core/codegen.py). A container on another CPU misses that key and
# compiles afresh, storing the result next to these (the directory belongs to the `miner` user):
# slower to start, never a failure and never a kernel built for the wrong CPU.
RUN python -c 'from miner import pow; [pow.warm_up(backend) for backend in pow.backends()]'
STOPSIGNAL SIGTERM
# Healthy when Redis answers and this container's heartbeat (MINER_ID defaults to the hostname) is
# under 10 s old. The start period covers compiling the kernels afresh on another CPU.
HEALTHCHECK --interval=15s --timeout=10s --start-period=60s --retries=3 CMD ["miner", "health"]
ENTRYPOINT ["miner"]
CMD ["run"]

# One image for the API, the workers and the Ray nodes (compose.yaml), CUDA-capable: the CUDA
# build of torch lives here, never in the development venv or CI.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    WARMZOO_DATA_DIR=/data
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.12 python3.12-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3.12 -m venv /opt/warmzoo
ENV PATH=/opt/warmzoo/bin:$PATH

WORKDIR /app
# The CUDA wheel of the same torch release first, so the project's pin is already met.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY models ./models
COPY service ./service
COPY migrations ./migrations
# With Ray: the same image runs `ray start` on the Ray head and GPU workers.
RUN pip install --constraint constraints.txt '.[ray]'

VOLUME /data
EXPOSE 8000 8001
# `warmzoo serve` for the API (+ embedded workers); `warmzoo worker` for a worker only;
# `ray start ... --block` for a Ray node (WARMZOO_EXECUTOR=ray).
CMD ["warmzoo", "serve", "--host", "0.0.0.0", "--port", "8000", "--grpc-port", "8001"]

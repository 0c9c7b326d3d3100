# syntax=docker/dockerfile:1
# s3vl sync worker / reconcile job image. Entry point: the s3vl CLI.
#   worker:    docker run IMAGE worker              (ECS service, terraform/modules/s3vl)
#   reconcile: docker run IMAGE reconcile --apply --json   (EventBridge Scheduler task)
# S3VL_DATABASE_URL is injected by ECS from Secrets Manager; AWS credentials come from the task role.
# Build: docker build -t s3vl:0.1.0 .   (see terraform/README.md for ECR)

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The core distribution only: its wheel carries the SQL schema as package data (sync/sql is a link
# to sql/), so `s3vl install-sql` runs from this image too. The local stack (local/) is not in it.
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY sync ./sync
RUN python -m venv /opt/s3vl \
 && /opt/s3vl/bin/pip install --upgrade pip \
 && /opt/s3vl/bin/pip install . \
 && /opt/s3vl/bin/python -m compileall -q /opt/s3vl/lib


FROM python:3.11-slim

ENV PATH=/opt/s3vl/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    S3VL_METRICS_PORT=9464

# Fixed non-root uid/gid: the ECS task definition runs as 10001:10001 with a read-only root filesystem.
RUN groupadd --system --gid 10001 s3vl \
 && useradd --system --uid 10001 --gid s3vl --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin s3vl

COPY --from=build /opt/s3vl /opt/s3vl

USER 10001:10001
WORKDIR /tmp
EXPOSE 9464

ENTRYPOINT ["s3vl"]
CMD ["worker"]

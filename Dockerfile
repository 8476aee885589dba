# Bordin's Airflow image, used by every Airflow service in docker-compose.yml.
# The base tag must match the apache-airflow pin in requirements.lock
# (tests/test_docker_compose.py checks this).
FROM apache/airflow:3.3.2-python3.11

ENV DO_NOT_TRACK=1 \
    GX_ANALYTICS_ENABLED=False \
    DBT_SEND_ANONYMOUS_USAGE_STATS=False \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

USER root
RUN mkdir -p /opt/bordin && chown airflow:0 /opt/bordin
USER airflow
WORKDIR /opt/bordin

# The same fully pinned dependency set as `make venv`, installed without resolution. It holds
# both Postgres drivers the metadata DB needs (psycopg2-binary for Airflow's sync engine,
# asyncpg for its async one).
COPY --chown=airflow:0 requirements.lock ./
RUN pip install --no-deps -r requirements.lock

# The project itself. Installed in editable mode from /opt/bordin so that the code's
# REPO_ROOT (ingestion/settings.py) is /opt/bordin, where docker-compose.yml mounts
# dags/ and dbt_project/ over the copies baked in here.
COPY --chown=airflow:0 pyproject.toml README.md ./
COPY --chown=airflow:0 ingestion/ ./ingestion/
COPY --chown=airflow:0 expectations/ ./expectations/
COPY --chown=airflow:0 warehouse/ ./warehouse/
COPY --chown=airflow:0 dags/ ./dags/
COPY --chown=airflow:0 dbt_project/ ./dbt_project/
RUN pip install --no-deps --no-build-isolation -e .

# One image for both services (the command picks which): `mandat collection run`, ...
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY services ./services
COPY infra/postgres ./infra/postgres
RUN pip install --no-cache-dir .
# the services find infra/postgres next to the package (migrations): install in place
ENV PYTHONPATH=/app
USER nobody
CMD ["mandat", "collection", "run"]

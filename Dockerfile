# Build and run agent-webkit-server. docker-compose.yml runs it against a Postgres service.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The server package only: the tools and the fake CLI are workspace members it does not need.
RUN cargo build --release --locked --package agent-webkit-server

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/agent-webkit agent-webkit
COPY --from=build /src/target/release/agent-webkit-server /usr/local/bin/
COPY --from=build /src/fixtures /usr/share/agent-webkit/fixtures
USER agent-webkit
ENV AGENT_WEBKIT_LISTEN=0.0.0.0:8080 \
    AGENT_WEBKIT_FIXTURES=/usr/share/agent-webkit/fixtures
EXPOSE 8080
ENTRYPOINT ["agent-webkit-server"]
CMD ["serve"]

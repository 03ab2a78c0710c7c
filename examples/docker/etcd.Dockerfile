# etcd for docker-compose.yml: Debian's etcd-server, the same etcd the
# tests run (internal/etcdtest). The data directory is owned by the user
# etcd runs as: a named volume mounted there starts with this owner.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends etcd-server && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/etcd && chown nobody:nogroup /var/lib/etcd && chmod 0700 /var/lib/etcd
USER nobody
VOLUME /var/lib/etcd
EXPOSE 2379 2380
ENTRYPOINT ["/usr/bin/etcd"]

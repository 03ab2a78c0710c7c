# geodns as a static binary on an empty image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/geodns ./cmd/geodns
# The state directory, owned by the user geodns runs as: the scratch image
# has no shell to make it, and a named volume mounted there starts with
# this owner, so drains, forces and dials can be saved.
RUN mkdir -p /out/root/var/lib/geodns/state && chown -R 65534:65534 /out/root/var/lib/geodns/state && chmod 0700 /out/root/var/lib/geodns/state

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/geodns /geodns
COPY --from=build /out/root/ /
# Unprivileged; DNS on 5353 inside, published on the host as needed.
USER 65534:65534
VOLUME /var/lib/geodns/state
EXPOSE 5353/udp 5353/tcp 8053/tcp
ENTRYPOINT ["/geodns"]
CMD ["serve", "--config", "/etc/geodns/geodns.yaml"]

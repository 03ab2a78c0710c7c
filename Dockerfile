# geodns as a static binary on an empty image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/geodns ./cmd/geodns

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/geodns /geodns
# Unprivileged; DNS on 5353 inside, published on the host as needed.
USER 65534:65534
EXPOSE 5353/udp 5353/tcp 8053/tcp
ENTRYPOINT ["/geodns"]
CMD ["serve", "--config", "/etc/geodns/geodns.yaml"]

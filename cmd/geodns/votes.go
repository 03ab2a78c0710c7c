package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/geodns/geodns/cluster"
	"github.com/geodns/geodns/health"
	"github.com/prometheus/client_golang/prometheus"
)

// nsHealth is a node's share of the NS set's health: its votes on etcd
// and the probes given to it (cluster.Votes).
type nsHealth struct {
	cluster *cluster.Cluster
	votes   *cluster.Votes
}

// newNSHealth returns nil without a cluster: section.
func newNSHealth(cfg cluster.Config, h *health.Manager, log *slog.Logger, reg prometheus.Registerer) (*nsHealth, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	c, err := cluster.New(cluster.Options{Config: cfg, Version: version, Log: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	v := cluster.NewVotes(c, h, cluster.VotesOptions{Probers: cfg.Probers, Grace: cfg.PartitionGrace}, reg)
	return &nsHealth{cluster: c, votes: v}, nil
}

func (n *nsHealth) run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { n.votes.Run(ctx) })
	err := n.cluster.Run(ctx)
	wg.Wait()
	return err
}

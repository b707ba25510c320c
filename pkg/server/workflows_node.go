package server

import (
	"context"
	"sync"
	"time"

	"github.com/decisiongraph/dg/pkg/audit"
	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// WorkflowConfig maps the manifest's workflows section to the workflow
// runtime's configuration: escalation role, sweep interval, webhooks, and
// default_sla_hours as the SLA of trace reviews whose request names none
// (exception reviews keep the reference's 4 hours).
func WorkflowConfig(m *manifest.Manifest) workflow.Config {
	wf := m.Workflows
	cfg := workflow.Config{
		EscalationRole: wf.EscalationRole,
		SweepInterval:  wf.SweepInterval,
	}
	if wf.DefaultSLAHours > 0 {
		cfg.IncidentReviewSLA = time.Duration(wf.DefaultSLAHours) * time.Hour
	}
	for _, h := range wf.Notifications.Webhooks {
		cfg.Webhooks = append(cfg.Webhooks, workflow.Webhook{URL: h.URL, Categories: h.Categories, Secret: h.Secret})
	}
	return cfg
}

// startWorkflows builds the node's workflow service and starts its
// runtime (import and SLA sweep for the tenants this node leads) and its
// webhook deliverer. stop cancels both and waits for them, releasing the
// runtime's lock connection before the pool closes.
func (n *node) startWorkflows(ctx context.Context) (*workflow.Service, func()) {
	svc := workflow.New(n.pool, n.store, WorkflowConfig(n.m), workflow.Options{Logger: n.log, Audit: audit.New(n.pool, n.log)})
	ctx, cancel := context.WithCancel(ctx)
	wake, unsubscribe := n.store.Subscribe()
	rt := workflow.NewRuntime(svc, wake)
	d := workflow.NewDeliverer(svc, nil)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = rt.Run(ctx) }()
	go func() { defer wg.Done(); _ = d.Run(ctx) }()
	n.log.Info("workflow runtime started", "sla_sweep_interval", svc.Config().SweepInterval.String(), "webhooks", len(svc.Config().Webhooks))
	return svc, func() {
		cancel()
		unsubscribe()
		wg.Wait()
	}
}

// withWorkflows adds the node's workflow service to the API configuration.
func (n *node) withWorkflows(cfg *APIConfig) *APIConfig {
	cfg.Workflows = n.workflows
	return cfg
}

// withWorkflowHealth adds the workflows section (runtime settings,
// tenants, webhook outbox by state) to the healthz details.
func (n *node) withWorkflowHealth(details map[string]func(context.Context) (any, error)) map[string]func(context.Context) (any, error) {
	if n.workflows != nil {
		details["workflows"] = func(ctx context.Context) (any, error) { return n.workflows.Health(ctx) }
	}
	return details
}

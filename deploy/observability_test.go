package deploy

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The operator-facing files checked here, relative to this directory.
const (
	metricsGo          = "../internal/metrics/metrics.go"
	dashboardFile      = "grafana/contactrelay-dashboard.json"
	alertsFile         = "prometheus/alerts.yaml"
	serviceMonitorFile = "prometheus/servicemonitor.yaml"
	operationsDoc      = "../docs/OPERATIONS.md"
)

// targetLabels are the labels Prometheus attaches to every scraped series
// (the scrape job's, and the Prometheus Operator's from the ServiceMonitor):
// any selector may match on them.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "endpoint", "container"}

// ---------------------------------------------------------------------------
// The service's metrics, from internal/metrics/metrics.go (read as source,
// not imported, so that this package depends on no package of the service).

type metricDef struct {
	name   string // full name, namespace included
	kind   string // Counter, Gauge, Histogram or Summary
	labels []string
}

// serviceMetrics parses metrics.go and returns every metric it constructs
// (prometheus.NewX or NewXVec with XOpts{Namespace, Name}), by full name.
func serviceMetrics(t *testing.T) map[string]metricDef {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, metricsGo, nil, 0)
	require.NoError(t, err)

	consts := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		if gd, ok := n.(*ast.GenDecl); ok && gd.Tok == token.CONST {
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if i < len(vs.Values) {
						if s, ok := stringLit(vs.Values[i], nil); ok {
							consts[id.Name] = s
						}
					}
				}
			}
		}
		return true
	})

	out := map[string]metricDef{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !isIdent(sel.X, "prometheus") || !strings.HasPrefix(sel.Sel.Name, "New") || len(call.Args) == 0 {
			return true
		}
		opts, ok := call.Args[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		fields := map[string]string{}
		for _, el := range opts.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			if s, ok := stringLit(kv.Value, consts); ok {
				fields[kv.Key.(*ast.Ident).Name] = s
			}
		}
		if fields["Name"] == "" {
			return true
		}
		d := metricDef{kind: strings.TrimSuffix(strings.TrimPrefix(sel.Sel.Name, "New"), "Vec")}
		d.name = strings.Join(slices.DeleteFunc([]string{fields["Namespace"], fields["Subsystem"], fields["Name"]},
			func(s string) bool { return s == "" }), "_")
		if len(call.Args) > 1 {
			if labels, ok := call.Args[1].(*ast.CompositeLit); ok {
				for _, el := range labels.Elts {
					if s, ok := stringLit(el, consts); ok {
						d.labels = append(d.labels, s)
					}
				}
			}
		}
		require.NotContains(t, out, d.name, "%s defined twice", d.name)
		out[d.name] = d
		return true
	})

	// Sanity checks of the parsing against names the code is known to have.
	require.Contains(t, out, "contactrelay_outcomes_total", "no metrics found in %s", metricsGo)
	require.Equal(t, []string{"provider", "event", "reason"}, out["contactrelay_outcomes_total"].labels)
	require.Equal(t, "Histogram", out["contactrelay_command_duration_seconds"].kind)
	require.Equal(t, "Gauge", out["contactrelay_consumer_lag"].kind)
	return out
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// stringLit returns the value of a string literal, or of a constant of
// consts named by an identifier.
func stringLit(e ast.Expr, consts map[string]string) (string, bool) {
	switch v := e.(type) {
	case *ast.BasicLit:
		if v.Kind == token.STRING {
			s, err := strconv.Unquote(v.Value)
			return s, err == nil
		}
	case *ast.Ident:
		s, ok := consts[v.Name]
		return s, ok
	}
	return "", false
}

// runtimeMetrics are the names the Go runtime's and the process's
// collectors expose, as metrics.go registers them (checked textually).
func runtimeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(metricsGo)
	require.NoError(t, err)
	require.Contains(t, string(src), "collectors.NewGoCollector()", "metrics.go changed its Go collector: update this test")
	require.Contains(t, string(src), "collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})", "metrics.go changed its process collector: update this test")
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]bool{}
	for _, mf := range families {
		out[mf.GetName()] = true
	}
	require.True(t, out["go_goroutines"])
	return out
}

// ---------------------------------------------------------------------------
// PromQL, read with regular expressions: enough to find the metric names
// and the label matchers of the selectors.

var (
	serviceMetricRe = regexp.MustCompile(`\bcontactrelay_[a-z_]+`)
	runtimeMetricRe = regexp.MustCompile(`\b(?:go|process)_[a-z_]+`)
	selectorRe      = regexp.MustCompile(`\b(contactrelay_[a-z_]+)\s*\{([^}]*)\}`)
	matcherRe       = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	quantileRe      = regexp.MustCompile(`histogram_quantile\(\s*[0-9.]+\s*,[^;]*?\b(contactrelay_[a-z_]+)`)
)

// resolveMetric maps a name used in PromQL to the metric that defines it:
// the name itself, or a histogram's or summary's _bucket, _count or _sum
// series. It returns the series suffix too.
func resolveMetric(defs map[string]metricDef, used string) (metricDef, string, bool) {
	if d, ok := defs[used]; ok {
		return d, "", true
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		base, ok := strings.CutSuffix(used, suffix)
		if !ok {
			continue
		}
		d, ok := defs[base]
		if ok && (d.kind == "Histogram" || (d.kind == "Summary" && suffix != "_bucket")) {
			return d, suffix, true
		}
	}
	return metricDef{}, "", false
}

// checkExpr asserts that every contactrelay_ metric of expr is defined,
// that each selector matches only on the metric's labels or on target
// labels, and that histogram_quantile reads a histogram's buckets.
func checkExpr(t *testing.T, defs map[string]metricDef, where, expr string) {
	t.Helper()
	for _, used := range serviceMetricRe.FindAllString(expr, -1) {
		_, _, ok := resolveMetric(defs, used)
		assert.True(t, ok, "%s: %s is not a metric of %s", where, used, metricsGo)
	}
	for _, m := range selectorRe.FindAllStringSubmatch(expr, -1) {
		d, _, ok := resolveMetric(defs, m[1])
		if !ok {
			continue
		}
		for _, lm := range matcherRe.FindAllStringSubmatch(m[2], -1) {
			label := lm[1]
			if slices.Contains(d.labels, label) || slices.Contains(targetLabels, label) {
				continue
			}
			if d.kind == "Histogram" && strings.HasSuffix(m[1], "_bucket") && label == "le" {
				continue
			}
			assert.Fail(t, "unknown label", "%s: %s has no label %q (labels %v)", where, d.name, label, d.labels)
		}
	}
	for _, m := range quantileRe.FindAllStringSubmatch(expr, -1) {
		_, suffix, ok := resolveMetric(defs, m[1])
		if ok {
			assert.Equal(t, "_bucket", suffix, "%s: histogram_quantile over %s, not a histogram's buckets", where, m[1])
			assert.Regexp(t, `by \([^)]*\ble\b`, expr, "%s: histogram_quantile needs the le label", where)
		}
	}
}

// ---------------------------------------------------------------------------
// The Grafana dashboard.

type grafanaTarget struct {
	Expr  string `json:"expr"`
	RefID string `json:"refId"`
}

type grafanaMapping struct {
	Type    string `json:"type"`
	Options map[string]struct {
		Text string `json:"text"`
	} `json:"options"`
}

type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Mappings []grafanaMapping `json:"mappings"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []grafanaTarget `json:"targets"`
	Panels  []grafanaPanel  `json:"panels"` // a collapsed row's
}

type grafanaVariable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      any    `json:"query"` // a string, or an object with "query"
	Definition string `json:"definition"`
}

type grafanaDashboard struct {
	Title         string         `json:"title"`
	UID           string         `json:"uid"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	src, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d grafanaDashboard
	require.NoError(t, json.Unmarshal(src, &d), dashboardFile)
	return d
}

// panels returns every panel, those inside collapsed rows included.
func (d grafanaDashboard) panels() []grafanaPanel {
	var out []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func (d grafanaDashboard) variable(name string) (grafanaVariable, bool) {
	for _, v := range d.Templating.List {
		if v.Name == name {
			return v, true
		}
	}
	return grafanaVariable{}, false
}

// queryText is a query variable's PromQL, whichever form it is stored in.
func (v grafanaVariable) queryText() string {
	switch q := v.Query.(type) {
	case string:
		return q
	case map[string]any:
		if s, ok := q["query"].(string); ok {
			return s
		}
	}
	return v.Definition
}

func TestDashboard(t *testing.T) {
	defs := serviceMetrics(t)
	runtime := runtimeMetrics(t)
	d := loadDashboard(t)
	panels := d.panels()

	var queryPanels []grafanaPanel
	for _, p := range panels {
		if p.Type != "row" {
			queryPanels = append(queryPanels, p)
		}
	}
	require.NotEmpty(t, queryPanels)

	circuitPanels := func() []grafanaPanel {
		var out []grafanaPanel
		for _, p := range queryPanels {
			for _, tg := range p.Targets {
				if strings.Contains(tg.Expr, "contactrelay_circuit_state") {
					out = append(out, p)
					break
				}
			}
		}
		return out
	}

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"schema version 39 or later", func(t *testing.T) {
			assert.GreaterOrEqual(t, d.SchemaVersion, 39)
			assert.NotEmpty(t, d.UID)
			assert.NotEmpty(t, d.Title)
		}},
		{"has a Prometheus datasource variable", func(t *testing.T) {
			v, ok := d.variable("datasource")
			require.True(t, ok, "no variable named datasource")
			assert.Equal(t, "datasource", v.Type)
			assert.Equal(t, "prometheus", v.Query)
		}},
		{"has job and instance variables over contactrelay metrics", func(t *testing.T) {
			for _, name := range []string{"job", "instance"} {
				v, ok := d.variable(name)
				if !assert.True(t, ok, "no variable named %s", name) {
					continue
				}
				assert.Equal(t, "query", v.Type, name)
				q := v.queryText()
				assert.Contains(t, q, "label_values(", name)
				checkExpr(t, defs, "variable "+name, q)
			}
		}},
		{"panel ids are unique", func(t *testing.T) {
			seen := map[int]string{}
			for _, p := range panels {
				assert.NotContains(t, seen, p.ID, "panel %q reuses id %d of %q", p.Title, p.ID, seen[p.ID])
				seen[p.ID] = p.Title
			}
		}},
		{"panels fit the grid", func(t *testing.T) {
			for _, p := range panels {
				assert.True(t, p.GridPos.W > 0 && p.GridPos.H > 0 && p.GridPos.X >= 0 && p.GridPos.X+p.GridPos.W <= 24,
					"panel %q: gridPos %+v", p.Title, p.GridPos)
			}
		}},
		{"every panel queries the datasource variable", func(t *testing.T) {
			for _, p := range queryPanels {
				require.NotNil(t, p.Datasource, "panel %q has no datasource", p.Title)
				assert.Equal(t, "prometheus", p.Datasource.Type, p.Title)
				assert.Equal(t, "${datasource}", p.Datasource.UID, p.Title)
				assert.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			}
		}},
		{"every query is filtered by job and instance", func(t *testing.T) {
			for _, p := range queryPanels {
				refs := map[string]bool{}
				for _, tg := range p.Targets {
					assert.NotEmpty(t, tg.Expr, "panel %q: empty query", p.Title)
					assert.Contains(t, tg.Expr, `job=~"$job"`, "panel %q: %s", p.Title, tg.Expr)
					assert.Contains(t, tg.Expr, `instance=~"$instance"`, "panel %q: %s", p.Title, tg.Expr)
					assert.False(t, refs[tg.RefID], "panel %q: refId %s twice", p.Title, tg.RefID)
					refs[tg.RefID] = true
				}
			}
		}},
		{"queries use only the service's metrics", func(t *testing.T) {
			for _, p := range queryPanels {
				for _, tg := range p.Targets {
					checkExpr(t, defs, "panel "+strconv.Quote(p.Title), tg.Expr)
					for _, used := range runtimeMetricRe.FindAllString(tg.Expr, -1) {
						assert.True(t, runtime[used], "panel %q: %s is not a Go or process collector metric", p.Title, used)
					}
				}
			}
		}},
		{"every metric of the service is on the dashboard", func(t *testing.T) {
			used := map[string]bool{}
			for _, p := range queryPanels {
				for _, tg := range p.Targets {
					for _, name := range serviceMetricRe.FindAllString(tg.Expr, -1) {
						if def, _, ok := resolveMetric(defs, name); ok {
							used[def.name] = true
						}
					}
				}
			}
			for name := range defs {
				assert.True(t, used[name], "%s (from %s) has no panel", name, metricsGo)
			}
		}},
		{"the runtime panels show memory, CPU and goroutines", func(t *testing.T) {
			var all strings.Builder
			for _, p := range queryPanels {
				for _, tg := range p.Targets {
					all.WriteString(tg.Expr + "\n")
				}
			}
			for _, name := range []string{"process_resident_memory_bytes", "process_cpu_seconds_total", "go_goroutines"} {
				assert.True(t, regexp.MustCompile(`\b`+name+`\b`).MatchString(all.String()), "no panel shows %s", name)
			}
		}},
		{"command and provider latencies are p50 and p99 quantiles", func(t *testing.T) {
			for _, h := range []string{"contactrelay_command_duration_seconds_bucket", "contactrelay_provider_request_duration_seconds_bucket"} {
				var quantiles []string
				for _, p := range queryPanels {
					for _, tg := range p.Targets {
						if strings.Contains(tg.Expr, h) {
							if m := regexp.MustCompile(`histogram_quantile\(\s*([0-9.]+)`).FindStringSubmatch(tg.Expr); m != nil {
								quantiles = append(quantiles, m[1])
							}
						}
					}
				}
				assert.Subset(t, quantiles, []string{"0.5", "0.99"}, h)
			}
		}},
		{"circuit state panels map 0, 1, 2 to closed, half-open, open", func(t *testing.T) {
			cps := circuitPanels()
			require.NotEmpty(t, cps)
			var types []string
			for _, p := range cps {
				types = append(types, p.Type)
				got := map[string]string{}
				for _, m := range p.FieldConfig.Defaults.Mappings {
					if m.Type == "value" {
						for k, v := range m.Options {
							got[k] = v.Text
						}
					}
				}
				assert.Equal(t, map[string]string{"0": "closed", "1": "half-open", "2": "open"}, got, "panel %q", p.Title)
			}
			assert.True(t, slices.Contains(types, "state-timeline") || slices.Contains(types, "stat"), "types %v", types)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// ---------------------------------------------------------------------------
// The alerts.

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type prometheusRule struct {
	header `yaml:",inline"`
	Spec   struct {
		Groups []struct {
			Name     string      `yaml:"name"`
			Interval string      `yaml:"interval"`
			Rules    []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	} `yaml:"spec"`
}

type serviceMonitor struct {
	header `yaml:",inline"`
	Spec   struct {
		JobLabel string `yaml:"jobLabel"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

// requiredAlerts are the alerts operators are told about
// (docs/OPERATIONS.md).
var requiredAlerts = []string{
	"ContactrelayLagGrowing",
	"ContactrelayNoConsumption",
	"ContactrelayExhaustedFailures",
	"ContactrelayRejectedSpike",
	"ContactrelaySettleErrors",
	"ContactrelayCircuitOpen",
	"ContactrelayProviderErrorRate",
	"ContactrelayDown",
	"ContactrelayNotReady",
}

var upJobRe = regexp.MustCompile(`\bup\s*\{[^}]*\bjob\s*=\s*"([^"]+)"`)

func TestAlerts(t *testing.T) {
	defs := serviceMetrics(t)
	var pr prometheusRule
	decodeFile(t, alertsFile, &pr)
	var rules []alertRule
	for _, g := range pr.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	names := map[string]int{}
	for _, r := range rules {
		names[r.Alert]++
	}

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"is a PrometheusRule", func(t *testing.T) {
			assert.Equal(t, "monitoring.coreos.com/v1", pr.APIVersion)
			assert.Equal(t, "PrometheusRule", pr.Kind)
			assert.NotEmpty(t, pr.Metadata.Name)
			require.NotEmpty(t, rules)
		}},
		{"groups are named and distinct", func(t *testing.T) {
			seen := map[string]bool{}
			for _, g := range pr.Spec.Groups {
				assert.NotEmpty(t, g.Name)
				assert.False(t, seen[g.Name], "group %s twice", g.Name)
				seen[g.Name] = true
				assert.NotEmpty(t, g.Rules, "group %s has no rule", g.Name)
			}
		}},
		{"has the documented alerts", func(t *testing.T) {
			for _, a := range requiredAlerts {
				assert.Equal(t, 1, names[a], "alert %s", a)
			}
		}},
		{"alert names are unique", func(t *testing.T) {
			for n, c := range names {
				assert.Equal(t, 1, c, "alert %q appears %d times", n, c)
			}
		}},
		{"every alert has a severity, a summary, a description and a runbook", func(t *testing.T) {
			for _, r := range rules {
				if r.Alert == "" {
					continue // a recording rule
				}
				assert.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], "%s: severity", r.Alert)
				for _, a := range []string{"summary", "description", "runbook"} {
					assert.NotEmpty(t, strings.TrimSpace(r.Annotations[a]), "%s: annotation %s", r.Alert, a)
				}
				if u := r.Annotations["runbook_url"]; u != "" {
					assert.True(t, strings.HasPrefix(u, "https://"), "%s: runbook_url %q", r.Alert, u)
				}
			}
		}},
		{"every rule has an expression and a valid for", func(t *testing.T) {
			for _, r := range rules {
				assert.NotEmpty(t, strings.TrimSpace(r.Expr), "%s%s", r.Alert, r.Record)
				assert.True(t, (r.Alert == "") != (r.Record == ""), "a rule is an alert or a record: %q %q", r.Alert, r.Record)
				if r.For != "" {
					d, err := time.ParseDuration(r.For)
					if assert.NoError(t, err, "%s: for", r.Alert) {
						assert.Positive(t, d, "%s: for", r.Alert)
					}
				}
			}
		}},
		{"expressions use only the service's metrics", func(t *testing.T) {
			for _, r := range rules {
				checkExpr(t, defs, "alert "+r.Alert+r.Record, r.Expr)
			}
		}},
		{"brackets balance", func(t *testing.T) {
			for _, r := range rules {
				for _, pair := range []string{"()", "[]", "{}"} {
					assert.Equal(t, strings.Count(r.Expr, pair[:1]), strings.Count(r.Expr, pair[1:]), "%s: %s", r.Alert, pair)
				}
			}
		}},
		{"the up alerts name the ServiceMonitor's job", func(t *testing.T) {
			var sm serviceMonitor
			decodeFile(t, serviceMonitorFile, &sm)
			m := loadManifests(t)
			assert.Equal(t, "ServiceMonitor", sm.Kind)
			assert.Equal(t, m.kustomization.Namespace, sm.Metadata.Namespace, "the ServiceMonitor's namespace")
			assert.Equal(t, m.kustomization.Namespace, pr.Metadata.Namespace, "the PrometheusRule's namespace")
			assert.Subset(t, m.service.Metadata.Labels, sm.Spec.Selector.MatchLabels, "the ServiceMonitor selects the Service")
			var ports []string
			for _, p := range m.service.Spec.Ports {
				ports = append(ports, p.Name)
			}
			require.NotEmpty(t, sm.Spec.Endpoints)
			for _, e := range sm.Spec.Endpoints {
				assert.Contains(t, ports, e.Port)
				assert.Equal(t, "/metrics", e.Path)
			}
			// Without jobLabel, the operator names the job after the Service.
			require.Empty(t, sm.Spec.JobLabel)
			found := false
			for _, r := range rules {
				for _, mm := range upJobRe.FindAllStringSubmatch(r.Expr, -1) {
					found = true
					assert.Equal(t, m.service.Metadata.Name, mm[1], "%s", r.Alert)
				}
			}
			assert.True(t, found, "no alert on up{job=...}")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// ---------------------------------------------------------------------------
// docs/OPERATIONS.md names every metric and alert.

func TestOperatingDocs(t *testing.T) {
	src, err := os.ReadFile(operationsDoc)
	require.NoError(t, err)
	section := string(src)

	var pr prometheusRule
	decodeFile(t, alertsFile, &pr)
	var alerts []string
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
			}
		}
	}
	metrics := serviceMetrics(t)
	var metricNames []string
	for name := range metrics {
		metricNames = append(metricNames, name)
	}
	sort.Strings(metricNames)

	tests := []struct {
		name  string
		items []string
	}{
		{"every metric", metricNames},
		{"every alert", alerts},
		{"the files", []string{path.Join("deploy", dashboardFile), path.Join("deploy", alertsFile)}},
		{"the endpoints", []string{"/healthz", "/readyz", "/metrics"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NotEmpty(t, tt.items)
			for _, it := range tt.items {
				assert.Contains(t, section, "`"+it+"`", "docs/OPERATIONS.md does not mention `%s`", it)
			}
		})
	}
}

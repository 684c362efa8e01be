// Package deploy holds contactrelay's container and deployment files. It has
// no code: this test checks the files against each other, against the
// contract's names and against the variables the service actually reads,
// since nothing here can be run in a unit test (no container engine, no
// cluster).
package deploy

import (
	"bufio"
	"errors"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// Paths, relative to this directory (go test runs in it).
const (
	kubeDir        = "kubernetes"
	composeFile    = "docker-compose.yaml"
	composeEnvFile = "contactrelay.env.example"
	helmValues     = "nats/values.yaml"
	natsConf       = "nats/nats-server.conf"
	configGo       = "../internal/config/config.go"
	providersDir   = "../internal/providers"
	mainPackage    = "../cmd/consumer"
	dockerfile     = "../Dockerfile"
	dockerignore   = "../.dockerignore"
	goMod          = "../go.mod"
)

// The contract's JetStream names (../docs/CONTRACT.md, "Names"). Literal rather
// than internal/provision's constants, so that this test depends on no package
// of the service and the contract stays the reference.
const (
	commandStream = "CONTACT_COMMANDS"
	durable       = "contact-consumer"
)

// runtimeVars are environment variables read by the Go runtime rather than
// by the service; the manifests may set them.
var runtimeVars = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC", "GODEBUG", "GOTRACEBACK"}

// ---------------------------------------------------------------------------
// The service's variables, from internal/config/config.go and the
// provider registry, internal/providers.

type setting struct {
	env, def string
	// secret: a secret value, or a file holding one (secretFile, such as
	// NATS_CREDS): either comes from a Secret, never from the ConfigMap.
	secret bool
}

var (
	settingLine = regexp.MustCompile(`(?m)^\s*\{Env:\s*"([A-Z][A-Z0-9_]*)"(.*)\},?\s*$`)
	settingDef  = regexp.MustCompile(`\bDefault:\s*"([^"]*)"`)
	settingSec  = regexp.MustCompile(`\bSecret(File)?:\s*true\b`)
)

// serviceSettings reads the settings table of config.go
// (ServiceSettings) and each provider's spec: every variable the service
// knows, its default and whether it may come from X_FILE.
func serviceSettings(t *testing.T) map[string]setting {
	t.Helper()
	// The service's own settings, and each provider's (internal/providers).
	files, err := filepath.Glob(filepath.Join(providersDir, "*.go"))
	require.NoError(t, err)
	files = slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, "_test.go") })
	var src []byte
	for _, f := range append([]string{configGo}, files...) {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		src = append(src, b...)
	}
	out := map[string]setting{}
	for _, m := range settingLine.FindAllStringSubmatch(string(src), -1) {
		s := setting{env: m[1], secret: settingSec.MatchString(m[2])}
		if d := settingDef.FindStringSubmatch(m[2]); d != nil {
			s.def = d[1]
		}
		out[s.env] = s
	}
	// A sanity check of the regexp against names the contract fixes.
	require.Contains(t, out, "NATS_URL", "no settings found in %s", configGo)
	require.Contains(t, out, "SHUTDOWN_GRACE")
	require.True(t, out["INSTANTPAY_CLIENT_SECRET"].secret, "secret: true not recognised")
	return out
}

// knownVar reports whether name is a variable the service (or the Go
// runtime) reads: a setting, or X_FILE for a secret setting X.
func knownVar(settings map[string]setting, name string) bool {
	if _, ok := settings[name]; ok {
		return true
	}
	if base, ok := strings.CutSuffix(name, "_FILE"); ok && settings[base].secret {
		return true
	}
	return slices.Contains(runtimeVars, name)
}

// ---------------------------------------------------------------------------
// YAML loading.

// yamlFiles lists the YAML files under deploy/.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, filepath.ToSlash(p))
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return files
}

// documents decodes every YAML document of a file, skipping empty ones.
func documents(t *testing.T, file string) []*yaml.Node {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []*yaml.Node
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "%s: document %d", file, i)
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			continue
		}
		docs = append(docs, &n)
	}
	return docs
}

// decodeFile decodes a single-document YAML file into v.
func decodeFile(t *testing.T, file string, v any) {
	t.Helper()
	docs := documents(t, file)
	require.Len(t, docs, 1, "%s: want one YAML document", file)
	require.NoError(t, docs[0].Decode(v), file)
}

// ---------------------------------------------------------------------------
// The Kubernetes objects, as far as the checks need them.

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type header struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // number or port name
	} `yaml:"httpGet"`
	FailureThreshold int `yaml:"failureThreshold"`
	PeriodSeconds    int `yaml:"periodSeconds"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	Privileged               *bool  `yaml:"privileged"`
	Capabilities             struct {
		Drop []string `yaml:"drop"`
		Add  []string `yaml:"add"`
	} `yaml:"capabilities"`
}

// keyRef names a key of a ConfigMap or Secret (an env's valueFrom).
type keyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
			SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *securityContext `yaml:"securityContext"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int64           `yaml:"terminationGracePeriodSeconds"`
	RestartPolicy                 string           `yaml:"restartPolicy"`
	SecurityContext               *securityContext `yaml:"securityContext"`
	TopologySpreadConstraints     []struct {
		TopologyKey   string `yaml:"topologyKey"`
		MaxSkew       int    `yaml:"maxSkew"`
		LabelSelector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
			Items      []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     podSpec    `yaml:"spec"`
}

type deployment struct {
	header `yaml:",inline"`
	Spec   struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template podTemplate `yaml:"template"`
	} `yaml:"spec"`
}

type job struct {
	header `yaml:",inline"`
	Spec   struct {
		Template podTemplate `yaml:"template"`
	} `yaml:"spec"`
}

type configMap struct {
	header `yaml:",inline"`
	Data   map[string]string `yaml:"data"`
}

type secret struct {
	header     `yaml:",inline"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type service struct {
	header `yaml:",inline"`
	Spec   struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type pdb struct {
	header `yaml:",inline"`
	Spec   struct {
		MinAvailable   any `yaml:"minAvailable"`
		MaxUnavailable any `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

type scaledObject struct {
	header `yaml:",inline"`
	Spec   struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicaCount *int `yaml:"minReplicaCount"`
		MaxReplicaCount *int `yaml:"maxReplicaCount"`
		Triggers        []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

type kustomization struct {
	header    `yaml:",inline"`
	Namespace string   `yaml:"namespace"`
	Resources []string `yaml:"resources"`
	Images    []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

// manifests holds the objects of deploy/kubernetes, by kind and role.
type manifests struct {
	namespace     header
	deployment    deployment // the service, consumer run
	job           job
	configMap     configMap
	secret        secret // the providers' credentials
	service       service
	pdb           pdb
	scaledObject  scaledObject
	kustomization kustomization
	// The console (console_test.go).
	console        deployment
	consoleSecret  secret
	consoleService service
	consoleIngress ingress
	// The NetworkPolicies of the service's and the console's pods.
	consumerPolicy networkPolicy
	consolePolicy  networkPolicy
	files          []string // the YAML files of the directory
}

// loadManifests decodes every document of deploy/kubernetes into the
// object of its kind and name, requiring exactly one of each object
// checked here, and no object the checks do not know.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	var m manifests
	targets := map[string]any{
		"Namespace/contactrelay":                    &m.namespace,
		"Deployment/contactrelay-consumer":          &m.deployment,
		"Job/contactrelay-setup":                    &m.job,
		"ConfigMap/contactrelay-config":             &m.configMap,
		"Secret/contactrelay-providers":             &m.secret,
		"Service/contactrelay-consumer":             &m.service,
		"PodDisruptionBudget/contactrelay-consumer": &m.pdb,
		"ScaledObject/contactrelay-consumer":        &m.scaledObject,
		"Kustomization/":                            &m.kustomization,
		"Deployment/contactrelay-console":           &m.console,
		"Secret/contactrelay-console":               &m.consoleSecret,
		"Service/contactrelay-console":              &m.consoleService,
		"Ingress/contactrelay-console":              &m.consoleIngress,
		"NetworkPolicy/contactrelay-consumer":       &m.consumerPolicy,
		"NetworkPolicy/contactrelay-console":        &m.consolePolicy,
	}
	seen := map[string]int{}
	for _, file := range yamlFiles(t) {
		if path.Dir(file) != kubeDir {
			continue
		}
		m.files = append(m.files, path.Base(file))
		for _, doc := range documents(t, file) {
			var h header
			require.NoError(t, doc.Decode(&h), file)
			id := h.Kind + "/" + h.Metadata.Name
			target, ok := targets[id]
			require.True(t, ok, "%s: %s is not an object these tests check: add it to loadManifests and check it", file, id)
			require.NoError(t, doc.Decode(target), "%s: %s", file, id)
			seen[id]++
		}
	}
	for id := range targets {
		require.Equal(t, 1, seen[id], "want exactly one %s in %s", id, kubeDir)
	}
	return m
}

// container returns the pod's only container.
func (p podSpec) container(t *testing.T) container {
	t.Helper()
	require.Len(t, p.Containers, 1, "want one container")
	return p.Containers[0]
}

// containerPort resolves a probe's or Service's port (a number or a port
// name) against the container's ports.
func containerPort(t *testing.T, c container, port any) int {
	t.Helper()
	switch p := port.(type) {
	case int:
		return p
	case string:
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
		t.Fatalf("port %q is not a port of container %s", p, c.Name)
	}
	t.Fatalf("port %v: want a number or a name", port)
	return 0
}

// httpAddrPort is the port of the service's HTTP_ADDR, from the ConfigMap
// or else the default.
func httpAddrPort(t *testing.T, settings map[string]setting, cm configMap) int {
	t.Helper()
	addr := cm.Data["HTTP_ADDR"]
	if addr == "" {
		addr = settings["HTTP_ADDR"].def
	}
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err, "HTTP_ADDR %q", addr)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return n
}

// shutdownGrace is SHUTDOWN_GRACE as env gives it, or else its default.
func shutdownGrace(t *testing.T, settings map[string]setting, env map[string]string) time.Duration {
	t.Helper()
	v := env["SHUTDOWN_GRACE"]
	if v == "" {
		v = settings["SHUTDOWN_GRACE"].def
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, "SHUTDOWN_GRACE %q", v)
	return d
}

// httpShutdownAllowance is how long the service may still take after
// SHUTDOWN_GRACE: the HTTP server's own shutdown (5s in service.go) and
// closing the NATS connection.
const httpShutdownAllowance = 5 * time.Second

// ---------------------------------------------------------------------------
// Tests.

// Every YAML file under deploy/ parses, document by document, and every
// Kubernetes document has apiVersion, kind and a name.
func TestYAMLDocumentsParse(t *testing.T) {
	for _, file := range yamlFiles(t) {
		t.Run(file, func(t *testing.T) {
			docs := documents(t, file)
			require.NotEmpty(t, docs, "no YAML document")
			if path.Dir(file) != kubeDir {
				return
			}
			for i, doc := range docs {
				var h header
				require.NoError(t, doc.Decode(&h))
				assert.NotEmpty(t, h.APIVersion, "document %d: apiVersion", i)
				assert.NotEmpty(t, h.Kind, "document %d: kind", i)
				if h.Kind != "Kustomization" {
					assert.NotEmpty(t, h.Metadata.Name, "document %d (%s): metadata.name", i, h.Kind)
				}
			}
		})
	}
}

func TestKustomization(t *testing.T) {
	m := loadManifests(t)
	k := m.kustomization
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"lists every manifest of the directory", func(t *testing.T) {
			var want []string
			for _, f := range m.files {
				if f != "kustomization.yaml" {
					want = append(want, f)
				}
			}
			assert.ElementsMatch(t, want, k.Resources)
		}},
		{"sets the namespace of namespace.yaml", func(t *testing.T) {
			var ns header
			decodeFile(t, path.Join(kubeDir, "namespace.yaml"), &ns)
			assert.Equal(t, "Namespace", ns.Kind)
			assert.Equal(t, ns.Metadata.Name, k.Namespace)
		}},
		{"image entry names the workloads' image", func(t *testing.T) {
			require.Len(t, k.Images, 1)
			img := m.deployment.Spec.Template.Spec.container(t).Image
			assert.True(t, strings.HasPrefix(img, k.Images[0].Name+":") || img == k.Images[0].Name,
				"image %q is not %q", img, k.Images[0].Name)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// Every variable set for the service is one it reads, and the secret ones
// stay out of the ConfigMap.
func TestEnvironmentVariablesAreKnown(t *testing.T) {
	settings := serviceSettings(t)
	m := loadManifests(t)

	var compose composeConfig
	decodeFile(t, composeFile, &compose)

	names := func(cs ...container) []string {
		var out []string
		for _, c := range cs {
			for _, e := range c.Env {
				out = append(out, e.Name)
			}
		}
		return out
	}
	keys := func(ms ...map[string]string) []string {
		var out []string
		for _, mm := range ms {
			for k := range mm {
				out = append(out, k)
			}
		}
		return out
	}
	var composeVars []string
	for _, svc := range compose.Services {
		if svc.Build != nil { // the services running contactrelay
			composeVars = append(composeVars, keys(svc.Environment)...)
		}
	}

	tests := []struct {
		name       string
		vars       []string
		mayBeEmpty bool
	}{
		{"configmap", keys(m.configMap.Data), false},
		{"secret", keys(m.secret.StringData, m.secret.Data), false},
		{"deployment env", names(m.deployment.Spec.Template.Spec.Containers...), false},
		{"job env", names(m.job.Spec.Template.Spec.Containers...), true},
		{"docker-compose environment", composeVars, false},
		{"contactrelay.env.example", envExampleVars(t), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.mayBeEmpty {
				require.NotEmpty(t, tt.vars)
			}
			for _, v := range tt.vars {
				assert.True(t, knownVar(settings, v), "%s is not a variable of %s", v, configGo)
			}
		})
	}

	t.Run("configmap holds no secret", func(t *testing.T) {
		for k := range m.configMap.Data {
			assert.False(t, settings[k].secret, "%s is a secret: put it in secret.yaml", k)
		}
	})
	t.Run("configmap holds every non-secret setting", func(t *testing.T) {
		for name, s := range settings {
			if !s.secret && !strings.HasPrefix(name, "NATS_TLS_") {
				assert.Contains(t, m.configMap.Data, name)
			}
		}
	})
	t.Run("configmap values are valid", func(t *testing.T) {
		for k, v := range m.configMap.Data {
			if v == "" {
				continue
			}
			switch def := settings[k].def; {
			case isNumber(def): // "0" means "no limit" where it is the default
				n, err := strconv.ParseFloat(v, 64)
				if assert.NoError(t, err, k) && def != "0" {
					assert.Positive(t, n, k)
				}
			case isDuration(def):
				d, err := time.ParseDuration(v)
				if assert.NoError(t, err, k) {
					assert.Positive(t, d, k)
				}
			}
		}
		assert.Contains(t, []string{"", "instantpay", "pik"}, m.configMap.Data["DEFAULT_PROVIDER"])
		assert.Equal(t, "json", m.configMap.Data["LOG_FORMAT"])
	})
	t.Run("secret keys are secret settings", func(t *testing.T) {
		for _, k := range keys(m.secret.StringData, m.secret.Data) {
			assert.True(t, settings[k].secret, "%s in secret.yaml is not a secret setting", k)
		}
	})
}

func isDuration(s string) bool {
	_, err := time.ParseDuration(s)
	return err == nil
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// envExampleVars lists the variables of contactrelay.env.example, commented
// out or not.
func envExampleVars(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(composeEnvFile)
	require.NoError(t, err)
	defer f.Close()
	re := regexp.MustCompile(`^#?\s*([A-Z][A-Z0-9_]*)=`)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, m[1])
		}
	}
	require.NoError(t, sc.Err())
	return out
}

func TestDeployment(t *testing.T) {
	settings := serviceSettings(t)
	m := loadManifests(t)
	d := m.deployment
	pod := d.Spec.Template.Spec
	c := pod.container(t)
	port := httpAddrPort(t, settings, m.configMap)

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"three replicas", func(t *testing.T) {
			require.NotNil(t, d.Spec.Replicas)
			assert.Equal(t, 3, *d.Spec.Replicas)
		}},
		{"selector matches the pod labels", func(t *testing.T) {
			require.NotEmpty(t, d.Spec.Selector.MatchLabels)
			assert.Subset(t, d.Spec.Template.Metadata.Labels, d.Spec.Selector.MatchLabels)
		}},
		{"runs the service", func(t *testing.T) {
			assert.Empty(t, c.Command, "keep the image's entrypoint /consumer")
			assert.Equal(t, []string{"run"}, c.Args)
		}},
		{"reads the configmap", func(t *testing.T) {
			var refs []string
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					refs = append(refs, ef.ConfigMapRef.Name)
				}
			}
			assert.Equal(t, []string{m.configMap.Metadata.Name}, refs)
		}},
		{"exposes HTTP_ADDR's port", func(t *testing.T) {
			require.Len(t, c.Ports, 1)
			assert.Equal(t, port, c.Ports[0].ContainerPort)
			assert.Equal(t, "http-metrics", c.Ports[0].Name)
		}},
		{"probes hit /healthz and /readyz", func(t *testing.T) {
			for _, p := range []struct {
				name  string
				probe *probe
				path  string
			}{
				{"startupProbe", c.StartupProbe, "/healthz"},
				{"livenessProbe", c.LivenessProbe, "/healthz"},
				{"readinessProbe", c.ReadinessProbe, "/readyz"},
			} {
				require.NotNil(t, p.probe, p.name)
				require.NotNil(t, p.probe.HTTPGet, p.name)
				assert.Equal(t, p.path, p.probe.HTTPGet.Path, p.name)
				assert.Equal(t, port, containerPort(t, c, p.probe.HTTPGet.Port), p.name)
			}
		}},
		{"grace period outlasts SHUTDOWN_GRACE", func(t *testing.T) {
			require.NotNil(t, pod.TerminationGracePeriodSeconds)
			grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
			sg := shutdownGrace(t, settings, m.configMap.Data)
			assert.Greater(t, grace, sg)
			assert.GreaterOrEqual(t, grace, sg+httpShutdownAllowance,
				"terminationGracePeriodSeconds %s leaves less than %s after SHUTDOWN_GRACE %s", grace, httpShutdownAllowance, sg)
		}},
		{"secrets come from mounted files", func(t *testing.T) {
			mounts := map[string]string{} // mount path -> secret name
			for _, vm := range c.VolumeMounts {
				for _, v := range pod.Volumes {
					if v.Name == vm.Name && v.Secret != nil {
						assert.True(t, vm.ReadOnly, "secret volume %s is mounted writable", v.Name)
						assert.Empty(t, v.Secret.Items, "mount every key of %s", v.Secret.SecretName)
						mounts[vm.MountPath] = v.Secret.SecretName
					}
				}
			}
			secretKeys := map[string]bool{}
			for k := range m.secret.StringData {
				secretKeys[k] = true
			}
			for k := range m.secret.Data {
				secretKeys[k] = true
			}
			fileVars := 0
			for _, e := range c.Env {
				base, ok := strings.CutSuffix(e.Name, "_FILE")
				if !ok {
					assert.False(t, settings[e.Name].secret, "%s: give secrets as %s_FILE", e.Name, e.Name)
					continue
				}
				fileVars++
				dir, key := path.Split(e.Value)
				assert.Equal(t, m.secret.Metadata.Name, mounts[strings.TrimSuffix(dir, "/")],
					"%s=%s is not on the mounted secret", e.Name, e.Value)
				assert.True(t, secretKeys[key], "%s=%s: secret has no key %s", e.Name, e.Value, key)
				assert.Equal(t, base, key, "%s reads the key of another variable", e.Name)
			}
			// Every secret key is read by some *_FILE variable.
			assert.Equal(t, len(secretKeys), fileVars)
		}},
		{"pod runs as non-root", func(t *testing.T) {
			require.NotNil(t, pod.SecurityContext)
			require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
			assert.True(t, *pod.SecurityContext.RunAsNonRoot)
			require.NotNil(t, pod.SecurityContext.RunAsUser)
			assert.NotZero(t, *pod.SecurityContext.RunAsUser)
		}},
		{"container is locked down", func(t *testing.T) {
			checkLockedDown(t, c)
		}},
		{"resources fit a 2-core node", func(t *testing.T) {
			for _, k := range []string{"cpu", "memory"} {
				assert.NotEmpty(t, c.Resources.Requests[k], "requests.%s", k)
				assert.NotEmpty(t, c.Resources.Limits[k], "limits.%s", k)
			}
			assert.LessOrEqual(t, milliCPU(t, c.Resources.Limits["cpu"]), 2000)
			assert.LessOrEqual(t, milliCPU(t, c.Resources.Requests["cpu"]), milliCPU(t, c.Resources.Limits["cpu"]))
		}},
		{"spread across nodes", func(t *testing.T) {
			var keys []string
			for _, tsc := range pod.TopologySpreadConstraints {
				keys = append(keys, tsc.TopologyKey)
				assert.Equal(t, d.Spec.Selector.MatchLabels, tsc.LabelSelector.MatchLabels, tsc.TopologyKey)
			}
			assert.Contains(t, keys, "kubernetes.io/hostname")
		}},
		{"prometheus scrape annotations", func(t *testing.T) {
			a := d.Spec.Template.Metadata.Annotations
			assert.Equal(t, "true", a["prometheus.io/scrape"])
			assert.Equal(t, strconv.Itoa(port), a["prometheus.io/port"])
			assert.Equal(t, "/metrics", a["prometheus.io/path"])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// checkLockedDown checks a container's security context.
func checkLockedDown(t *testing.T, c container) {
	t.Helper()
	sc := c.SecurityContext
	require.NotNil(t, sc, "securityContext")
	require.NotNil(t, sc.RunAsNonRoot)
	assert.True(t, *sc.RunAsNonRoot, "runAsNonRoot")
	require.NotNil(t, sc.ReadOnlyRootFilesystem)
	assert.True(t, *sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem")
	require.NotNil(t, sc.AllowPrivilegeEscalation)
	assert.False(t, *sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation")
	if sc.Privileged != nil {
		assert.False(t, *sc.Privileged, "privileged")
	}
	assert.Equal(t, []string{"ALL"}, sc.Capabilities.Drop, "capabilities.drop")
	assert.Empty(t, sc.Capabilities.Add, "capabilities.add")
}

// milliCPU parses a CPU quantity ("1", "500m", "1.5").
func milliCPU(t *testing.T, q string) int {
	t.Helper()
	if m, ok := strings.CutSuffix(q, "m"); ok {
		n, err := strconv.Atoi(m)
		require.NoError(t, err, q)
		return n
	}
	f, err := strconv.ParseFloat(q, 64)
	require.NoError(t, err, q)
	return int(f * 1000)
}

func TestSetupJob(t *testing.T) {
	m := loadManifests(t)
	pod := m.job.Spec.Template.Spec
	c := pod.container(t)
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"runs setup with three replicas", func(t *testing.T) {
			assert.Empty(t, c.Command)
			assert.Equal(t, []string{"setup", "--replicas", "3"}, c.Args)
		}},
		{"same image as the deployment", func(t *testing.T) {
			assert.Equal(t, m.deployment.Spec.Template.Spec.container(t).Image, c.Image)
		}},
		{"reads the configmap", func(t *testing.T) {
			require.NotEmpty(t, c.EnvFrom)
			require.NotNil(t, c.EnvFrom[0].ConfigMapRef)
			assert.Equal(t, m.configMap.Metadata.Name, c.EnvFrom[0].ConfigMapRef.Name)
		}},
		{"restart policy suits a job", func(t *testing.T) {
			assert.Contains(t, []string{"OnFailure", "Never"}, pod.RestartPolicy)
		}},
		{"container is locked down", func(t *testing.T) {
			checkLockedDown(t, c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func TestServiceAndDisruptionBudget(t *testing.T) {
	settings := serviceSettings(t)
	m := loadManifests(t)
	podLabels := m.deployment.Spec.Template.Metadata.Labels
	c := m.deployment.Spec.Template.Spec.container(t)
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"service is ClusterIP on the metrics port", func(t *testing.T) {
			s := m.service.Spec
			assert.Contains(t, []string{"", "ClusterIP"}, s.Type)
			require.Len(t, s.Ports, 1)
			assert.Equal(t, "http-metrics", s.Ports[0].Name)
			assert.Equal(t, httpAddrPort(t, settings, m.configMap), s.Ports[0].Port)
			assert.Equal(t, httpAddrPort(t, settings, m.configMap), containerPort(t, c, s.Ports[0].TargetPort))
		}},
		{"service selects the consumer pods", func(t *testing.T) {
			require.NotEmpty(t, m.service.Spec.Selector)
			assert.Subset(t, podLabels, m.service.Spec.Selector)
		}},
		{"pdb selects the consumer pods", func(t *testing.T) {
			require.NotEmpty(t, m.pdb.Spec.Selector.MatchLabels)
			assert.Subset(t, podLabels, m.pdb.Spec.Selector.MatchLabels)
		}},
		{"pdb sets one limit", func(t *testing.T) {
			assert.True(t, (m.pdb.Spec.MinAvailable == nil) != (m.pdb.Spec.MaxUnavailable == nil),
				"set minAvailable or maxUnavailable")
		}},
		{"pdb does not block drains at the minimum replica count", func(t *testing.T) {
			if min, ok := m.pdb.Spec.MinAvailable.(int); ok {
				require.NotNil(t, m.scaledObject.Spec.MinReplicaCount)
				assert.Less(t, min, *m.scaledObject.Spec.MinReplicaCount)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func TestScaledObject(t *testing.T) {
	m := loadManifests(t)
	so := m.scaledObject
	var values helmValuesConfig
	decodeFile(t, helmValues, &values)

	require.Len(t, so.Spec.Triggers, 1)
	trig := so.Spec.Triggers[0]
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"targets the deployment", func(t *testing.T) {
			assert.Equal(t, "Deployment", so.Spec.ScaleTargetRef.Kind)
			assert.Equal(t, m.deployment.Metadata.Name, so.Spec.ScaleTargetRef.Name)
		}},
		{"replica range", func(t *testing.T) {
			require.NotNil(t, so.Spec.MinReplicaCount)
			require.NotNil(t, so.Spec.MaxReplicaCount)
			assert.Equal(t, 1, *so.Spec.MinReplicaCount)
			assert.Equal(t, 10, *so.Spec.MaxReplicaCount)
		}},
		{"nats-jetstream trigger on the contract's names", func(t *testing.T) {
			assert.Equal(t, "nats-jetstream", trig.Type)
			assert.Equal(t, commandStream, trig.Metadata["stream"])
			assert.Equal(t, durable, trig.Metadata["consumer"])
			assert.Equal(t, "CONTACTRELAY", trig.Metadata["account"], "the account of deploy/nats's users, not the default $G")
		}},
		{"lag threshold is a positive number", func(t *testing.T) {
			n, err := strconv.Atoi(trig.Metadata["lagThreshold"])
			require.NoError(t, err)
			assert.Positive(t, n)
		}},
		{"monitoring endpoint is the NATS service's monitor port", func(t *testing.T) {
			host, port, err := net.SplitHostPort(trig.Metadata["natsServerMonitoringEndpoint"])
			require.NoError(t, err)
			assert.Equal(t, strconv.Itoa(values.Config.Monitor.Port), port)
			// The same NATS as the consumer's NATS_URL.
			assert.Contains(t, natsHosts(t, m.configMap.Data["NATS_URL"]), host)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// natsHosts returns the host names of a comma-separated NATS_URL.
func natsHosts(t *testing.T, urls string) []string {
	t.Helper()
	var hosts []string
	for _, u := range strings.Split(urls, ",") {
		// tls:// where the server wants TLS (deploy/nats).
		rest, ok := strings.CutPrefix(strings.TrimSpace(u), "tls://")
		if !ok {
			rest, ok = strings.CutPrefix(strings.TrimSpace(u), "nats://")
		}
		require.True(t, ok, "NATS URL %q: want tls://host:port or nats://host:port", u)
		host, port, err := net.SplitHostPort(rest)
		require.NoError(t, err, u)
		assert.Equal(t, "4222", port, u)
		hosts = append(hosts, host)
	}
	return hosts
}

// helmValuesConfig is the part of deploy/nats/values.yaml checked here.
type helmValuesConfig struct {
	Config struct {
		Cluster struct {
			Enabled  bool `yaml:"enabled"`
			Replicas int  `yaml:"replicas"`
		} `yaml:"cluster"`
		JetStream struct {
			Enabled   bool `yaml:"enabled"`
			FileStore struct {
				Enabled bool   `yaml:"enabled"`
				Dir     string `yaml:"dir"`
				PVC     struct {
					Enabled bool   `yaml:"enabled"`
					Size    string `yaml:"size"`
				} `yaml:"pvc"`
			} `yaml:"fileStore"`
		} `yaml:"jetstream"`
		Monitor struct {
			Enabled bool `yaml:"enabled"`
			Port    int  `yaml:"port"`
		} `yaml:"monitor"`
	} `yaml:"config"`
	Service struct {
		Ports struct {
			Monitor struct {
				Enabled bool `yaml:"enabled"`
			} `yaml:"monitor"`
		} `yaml:"ports"`
	} `yaml:"service"`
}

func TestNATSHelmValues(t *testing.T) {
	var v helmValuesConfig
	decodeFile(t, helmValues, &v)
	tests := []struct {
		name string
		ok   bool
	}{
		{"cluster enabled", v.Config.Cluster.Enabled},
		{"three servers", v.Config.Cluster.Replicas == 3},
		{"jetstream enabled", v.Config.JetStream.Enabled},
		{"file storage", v.Config.JetStream.FileStore.Enabled},
		{"file storage on a PVC", v.Config.JetStream.FileStore.PVC.Enabled && v.Config.JetStream.FileStore.PVC.Size != ""},
		{"monitoring on 8222", v.Config.Monitor.Enabled && v.Config.Monitor.Port == 8222},
		{"monitoring port on the service (KEDA)", v.Service.Ports.Monitor.Enabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.True(t, tt.ok)
		})
	}
}

func TestNATSServerConf(t *testing.T) {
	opts := loadNATSConf(t, prepareSecuredNATS(t))
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"named server", func(t *testing.T) { assert.NotEmpty(t, opts.ServerName) }},
		{"jetstream on file storage", func(t *testing.T) {
			assert.True(t, opts.JetStream)
			assert.NotEmpty(t, opts.StoreDir)
		}},
		{"monitoring on 8222", func(t *testing.T) { assert.Equal(t, 8222, opts.HTTPPort) }},
		{"clients on 4222", func(t *testing.T) { assert.Equal(t, 4222, opts.Port) }},
		{"three-node cluster", func(t *testing.T) {
			assert.NotEmpty(t, opts.Cluster.Name)
			assert.Equal(t, 6222, opts.Cluster.Port)
			require.Len(t, opts.Routes, 3)
			var hosts []string
			for _, r := range opts.Routes {
				assert.Equal(t, "6222", r.Port())
				hosts = append(hosts, r.Hostname())
			}
			assert.Contains(t, hosts, opts.ServerName, "routes include this node")
		}},
		{"payload fits a 64 KiB command", func(t *testing.T) {
			assert.GreaterOrEqual(t, opts.MaxPayload, int32(64*1024))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// ---------------------------------------------------------------------------
// docker compose.

type composeConfig struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string            `yaml:"context"`
		Dockerfile string            `yaml:"dockerfile"`
		Args       map[string]string `yaml:"args"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	StopGracePeriod string   `yaml:"stop_grace_period"`
	Profiles        []string `yaml:"profiles"`
	ReadOnly        bool     `yaml:"read_only"`
}

// natsOptions parses a NATS service's command line as nats-server does.
func natsOptions(t *testing.T, args []string) *server.Options {
	t.Helper()
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	noop := func() {}
	opts, err := server.ConfigureOptions(fs, args, noop, noop, noop)
	require.NoError(t, err, "nats-server rejects %q", args)
	require.Empty(t, fs.Args(), "arguments nats-server ignores")
	return opts
}

func TestDockerCompose(t *testing.T) {
	settings := serviceSettings(t)
	var c composeConfig
	decodeFile(t, composeFile, &c)

	var natsNames []string
	for name, s := range c.Services {
		if strings.Contains(s.Image, "nats:") {
			natsNames = append(natsNames, name)
		}
	}
	slices.Sort(natsNames)
	setup, consumer := c.Services["setup"], c.Services["consumer"]

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"three NATS servers", func(t *testing.T) {
			require.Len(t, natsNames, 3, "services with a nats image")
		}},
		{"NATS servers form one JetStream cluster", func(t *testing.T) {
			serverNames := map[string]bool{}
			clusters := map[string]bool{}
			for _, name := range natsNames {
				opts := natsOptions(t, c.Services[name].Command)
				assert.True(t, opts.JetStream, "%s: -js", name)
				assert.NotEmpty(t, opts.StoreDir, "%s: -sd", name)
				assert.Equal(t, 8222, opts.HTTPPort, "%s: -m", name)
				assert.Equal(t, 6222, opts.Cluster.Port, "%s: --cluster", name)
				serverNames[opts.ServerName] = true
				clusters[opts.Cluster.Name] = true
				var routes []string
				for _, r := range opts.Routes {
					routes = append(routes, r.Hostname())
				}
				assert.ElementsMatch(t, natsNames, routes, "%s: --routes", name)
			}
			assert.Len(t, serverNames, 3, "server names must be unique")
			assert.Len(t, clusters, 1, "one cluster name")
			assert.NotContains(t, clusters, "", "set --cluster_name")
		}},
		{"setup runs once with three replicas", func(t *testing.T) {
			require.NotNil(t, setup.Build, "setup is built from the Dockerfile")
			assert.Equal(t, []string{"setup", "--replicas", "3"}, setup.Command)
			for _, n := range natsNames {
				assert.Equal(t, "service_healthy", setup.DependsOn[n].Condition, "setup waits for %s", n)
			}
			assert.ElementsMatch(t, natsNames, natsHosts(t, setup.Environment["NATS_URL"]))
		}},
		{"consumer is built from the Dockerfile", func(t *testing.T) {
			require.NotNil(t, consumer.Build)
			_, err := os.Stat(filepath.Join(filepath.FromSlash(consumer.Build.Context), consumer.Build.Dockerfile))
			assert.NoError(t, err, "build context %s, dockerfile %s", consumer.Build.Context, consumer.Build.Dockerfile)
			assert.Contains(t, consumer.Build.Args, "VERSION")
			assert.Contains(t, consumer.Build.Args, "COMMIT")
		}},
		{"consumer runs against all three servers", func(t *testing.T) {
			assert.Contains(t, [][]string{nil, {"run"}}, consumer.Command)
			assert.ElementsMatch(t, natsNames, natsHosts(t, consumer.Environment["NATS_URL"]))
		}},
		{"consumer waits for setup to succeed", func(t *testing.T) {
			assert.Equal(t, "service_completed_successfully", consumer.DependsOn["setup"].Condition)
		}},
		{"consumer stop grace outlasts SHUTDOWN_GRACE", func(t *testing.T) {
			d, err := time.ParseDuration(consumer.StopGracePeriod)
			require.NoError(t, err, "stop_grace_period")
			assert.GreaterOrEqual(t, d, shutdownGrace(t, settings, consumer.Environment)+httpShutdownAllowance)
		}},
		{"consumer has a read-only filesystem", func(t *testing.T) {
			assert.True(t, consumer.ReadOnly)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// ---------------------------------------------------------------------------
// Dockerfile.

type dockerInstruction struct {
	cmd, args string
}

// dockerStages splits the Dockerfile into stages of instructions, joining
// continued lines and dropping comments. ARGs before the first FROM are
// returned as global arguments.
func dockerStages(t *testing.T) (globalArgs map[string]string, stages [][]dockerInstruction) {
	t.Helper()
	src, err := os.ReadFile(dockerfile)
	require.NoError(t, err)
	globalArgs = map[string]string{}
	var logical []string
	var cur strings.Builder
	for _, line := range strings.Split(string(src), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.TrimSpace(cur.String()); s != "" {
			logical = append(logical, s)
		}
		cur.Reset()
	}
	for _, l := range logical {
		cmd, args, _ := strings.Cut(l, " ")
		in := dockerInstruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		switch {
		case in.cmd == "FROM":
			stages = append(stages, []dockerInstruction{in})
		case len(stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			globalArgs[k] = v
		case len(stages) > 0:
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	require.NotEmpty(t, stages, "no FROM")
	return globalArgs, stages
}

// packageVars lists the package-level string variables of cmd/consumer.
func packageVars(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(mainPackage)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(mainPackage, e.Name()), nil, 0)
		require.NoError(t, err)
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" && len(vs.Values) == 0 {
					for _, n := range vs.Names {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	return names
}

func TestDockerfile(t *testing.T) {
	settings := serviceSettings(t)
	globalArgs, stages := dockerStages(t)
	final := stages[len(stages)-1]
	var build []dockerInstruction
	for _, st := range stages[:len(stages)-1] {
		build = append(build, st...)
	}
	find := func(st []dockerInstruction, cmd string) []string {
		var out []string
		for _, in := range st {
			if in.cmd == cmd {
				out = append(out, in.args)
			}
		}
		return out
	}
	var buildRun string
	for _, r := range find(build, "RUN") {
		if strings.Contains(r, "go build") {
			buildRun = r
		}
	}
	env := strings.Join(find(build, "ENV"), " ")

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"multi-stage", func(t *testing.T) {
			assert.GreaterOrEqual(t, len(stages), 2)
		}},
		{"build stage uses the module's Go release", func(t *testing.T) {
			from := stages[0][0].args
			assert.Contains(t, from, "golang:")
			mod, err := os.ReadFile(goMod)
			require.NoError(t, err)
			m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
			require.NotNil(t, m, "go directive in go.mod")
			from = strings.ReplaceAll(from, "${GO_VERSION}", globalArgs["GO_VERSION"])
			assert.Contains(t, from, "golang:"+string(m[1]))
		}},
		{"builds ./cmd/consumer statically", func(t *testing.T) {
			require.NotEmpty(t, buildRun, "a RUN with go build")
			assert.Contains(t, buildRun, "./cmd/consumer")
			assert.Contains(t, buildRun, "-trimpath")
			assert.Contains(t, buildRun, "-s -w")
			assert.True(t, strings.Contains(buildRun, "CGO_ENABLED=0") || strings.Contains(env, "CGO_ENABLED=0"), "CGO_ENABLED=0")
			assert.Contains(t, buildRun, "--mount=type=cache,target=/go/pkg/mod")
		}},
		{"links VERSION and COMMIT into existing variables", func(t *testing.T) {
			vars := packageVars(t)
			re := regexp.MustCompile(`-X main\.(\w+)=\$\{?(\w+)\}?`)
			got := map[string]string{}
			for _, m := range re.FindAllStringSubmatch(buildRun, -1) {
				assert.Contains(t, vars, m[1], "cmd/consumer has no string variable %s", m[1])
				got[m[2]] = m[1]
			}
			assert.Contains(t, got, "VERSION")
			assert.Contains(t, got, "COMMIT")
			buildArgs := strings.Join(find(build, "ARG"), " ")
			assert.Contains(t, buildArgs, "VERSION")
			assert.Contains(t, buildArgs, "COMMIT")
		}},
		{"final stage is distroless and non-root", func(t *testing.T) {
			from := final[0].args
			assert.Contains(t, from, "gcr.io/distroless/static")
			users := find(final, "USER")
			nonrootImage := strings.HasSuffix(from, ":nonroot")
			assert.True(t, nonrootImage || len(users) > 0, "use a :nonroot image or a USER")
			for _, u := range users {
				name, _, _ := strings.Cut(u, ":")
				assert.NotContains(t, []string{"root", "0"}, name, "USER %s", u)
			}
		}},
		{"final stage runs the consumer", func(t *testing.T) {
			assert.Equal(t, []string{`["/consumer"]`}, find(final, "ENTRYPOINT"))
			assert.Equal(t, []string{`["run"]`}, find(final, "CMD"))
			copies := strings.Join(find(final, "COPY"), "\n")
			assert.Regexp(t, `--from=\S+ /out/consumer /consumer`, copies)
		}},
		{"exposes HTTP_ADDR's port", func(t *testing.T) {
			_, port, err := net.SplitHostPort(settings["HTTP_ADDR"].def)
			require.NoError(t, err)
			assert.Equal(t, []string{port}, find(final, "EXPOSE"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func TestDockerignore(t *testing.T) {
	src, err := os.ReadFile(dockerignore)
	require.NoError(t, err)
	var patterns []string
	for _, l := range strings.Split(string(src), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	tests := []struct {
		name     string
		path     string
		excluded bool
	}{
		{"excludes .git", ".git", true},
		{"excludes deploy", "deploy", true},
		{"excludes local credentials", "deploy/contactrelay.env", true},
		{"keeps go.mod", "go.mod", false},
		{"keeps go.sum", "go.sum", false},
		{"keeps cmd", "cmd/consumer/main.go", false},
		{"keeps internal", "internal/provision/setup.go", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.excluded, dockerignored(t, patterns, tt.path))
		})
	}
}

// dockerignored reports whether p, or a directory above it, matches one of
// the patterns (no "!" exceptions; "**/" matches any directories).
func dockerignored(t *testing.T, patterns []string, p string) bool {
	t.Helper()
	for _, pat := range patterns {
		require.False(t, strings.HasPrefix(pat, "!"), "exceptions are not handled by this check")
		anyDir := strings.HasPrefix(pat, "**/")
		pat = strings.TrimPrefix(pat, "**/")
		parts := strings.Split(p, "/")
		for i := range parts {
			for j := i + 1; j <= len(parts); j++ {
				if i > 0 && !anyDir {
					break
				}
				ok, err := path.Match(pat, strings.Join(parts[i:j], "/"))
				require.NoError(t, err, pat)
				if ok {
					return true
				}
			}
		}
	}
	return false
}

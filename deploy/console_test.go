package deploy

import (
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The console's deployment: kubernetes/console-*.yaml, the NetworkPolicies
// and the authenticating proxy's values.

const (
	consoleGo        = "../internal/config/console.go"
	consoleServerDir = "../internal/console"
	oauth2Values     = "oauth2-proxy/values.yaml"
	// oauth2ProxyRelease is the Helm release of oauth2-proxy that
	// deploy/README.md installs; its chart names the Service after it and
	// gives its pods these selector labels.
	oauth2ProxyRelease = "oauth2-proxy"
)

var oauth2ProxyPods = map[string]string{
	"app.kubernetes.io/name":     "oauth2-proxy",
	"app.kubernetes.io/instance": oauth2ProxyRelease,
}

// natsPods are the labels of the NATS servers' pods of the chart's release
// "nats" (deploy/nats/values.yaml); the nats-box pod has another
// component.
var natsPods = map[string]string{
	"app.kubernetes.io/name":      "nats",
	"app.kubernetes.io/instance":  "nats",
	"app.kubernetes.io/component": "nats",
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type policyPeer struct {
	PodSelector       *labelSelector `yaml:"podSelector"`
	NamespaceSelector *labelSelector `yaml:"namespaceSelector"`
	IPBlock           *struct {
		CIDR   string   `yaml:"cidr"`
		Except []string `yaml:"except"`
	} `yaml:"ipBlock"`
}

type policyRule struct {
	From  []policyPeer `yaml:"from"`
	To    []policyPeer `yaml:"to"`
	Ports []struct {
		Protocol string `yaml:"protocol"`
		Port     any    `yaml:"port"`
	} `yaml:"ports"`
}

type networkPolicy struct {
	header `yaml:",inline"`
	Spec   struct {
		PodSelector labelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Ingress     []policyRule  `yaml:"ingress"`
		Egress      []policyRule  `yaml:"egress"`
	} `yaml:"spec"`
}

type ingress struct {
	header `yaml:",inline"`
	Spec   struct {
		IngressClassName string `yaml:"ingressClassName"`
		TLS              []struct {
			Hosts      []string `yaml:"hosts"`
			SecretName string   `yaml:"secretName"`
		} `yaml:"tls"`
		Rules []struct {
			Host string `yaml:"host"`
			HTTP struct {
				Paths []struct {
					Path     string `yaml:"path"`
					PathType string `yaml:"pathType"`
					Backend  struct {
						Service struct {
							Name string `yaml:"name"`
							Port struct {
								Name   string `yaml:"name"`
								Number int    `yaml:"number"`
							} `yaml:"port"`
						} `yaml:"service"`
					} `yaml:"backend"`
				} `yaml:"paths"`
			} `yaml:"http"`
		} `yaml:"rules"`
	} `yaml:"spec"`
}

// oauth2ProxyValues is the part of deploy/oauth2-proxy/values.yaml checked
// here.
type oauth2ProxyValues struct {
	Config struct {
		ExistingSecret string   `yaml:"existingSecret"`
		EmailDomains   []string `yaml:"emailDomains"`
	} `yaml:"config"`
	ExtraArgs map[string]string `yaml:"extraArgs"`
}

// selects reports whether a selector's labels pick pods with these labels;
// an empty selector picks every pod, which no check here wants.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// consoleSettings reads the console's own settings
// (internal/config/console.go, ConsoleSettings).
func consoleSettings(t *testing.T) map[string]setting {
	t.Helper()
	src, err := os.ReadFile(consoleGo)
	require.NoError(t, err)
	out := map[string]setting{}
	for _, m := range settingLine.FindAllStringSubmatch(string(src), -1) {
		s := setting{env: m[1], secret: settingSec.MatchString(m[2])}
		if d := settingDef.FindStringSubmatch(m[2]); d != nil {
			s.def = d[1]
		}
		out[s.env] = s
	}
	require.Contains(t, out, "CONSOLE_ADDR", "no settings found in %s", consoleGo)
	require.Contains(t, out, "CONSOLE_USER")
	require.True(t, out["CONSOLE_PASSWORD"].secret, "CONSOLE_PASSWORD is a secret setting")
	return out
}

// consoleVars is every variable `consumer console` reads: the NATS
// connection's, LOG_LEVEL and LOG_FORMAT of the service's settings (the
// ones cmd/consumer/console.go takes), and the console's own.
func consoleVars(t *testing.T) map[string]setting {
	t.Helper()
	out := consoleSettings(t)
	for name, s := range serviceSettings(t) {
		if strings.HasPrefix(name, "NATS_") || name == "LOG_LEVEL" || name == "LOG_FORMAT" {
			out[name] = s
		}
	}
	return out
}

// envOf returns a container's variables by name.
func envOf(c container) map[string]int {
	out := map[string]int{}
	for i, e := range c.Env {
		out[e.Name] = i
	}
	return out
}

// consolePort is the port of the console Deployment's CONSOLE_ADDR.
func consolePort(t *testing.T, c container) (host string, port int) {
	t.Helper()
	i, ok := envOf(c)["CONSOLE_ADDR"]
	require.True(t, ok, "the console sets CONSOLE_ADDR")
	host, p, err := net.SplitHostPort(c.Env[i].Value)
	require.NoError(t, err, "CONSOLE_ADDR %q", c.Env[i].Value)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return host, n
}

func TestConsoleDeployment(t *testing.T) {
	vars := consoleVars(t)
	m := loadManifests(t)
	d := m.console
	pod := d.Spec.Template.Spec
	c := pod.container(t)
	host, port := consolePort(t, c)
	env := envOf(c)

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"one replica (sessions are signed by the process)", func(t *testing.T) {
			require.NotNil(t, d.Spec.Replicas)
			assert.Equal(t, 1, *d.Spec.Replicas)
		}},
		{"selector matches its pods and no service pod", func(t *testing.T) {
			assert.True(t, selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels))
			assert.False(t, selects(d.Spec.Selector.MatchLabels, m.deployment.Spec.Template.Metadata.Labels),
				"the console's selector picks the service's pods")
			assert.False(t, selects(m.deployment.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels),
				"the service's selector picks the console's pods")
		}},
		{"the service's Service, PDB and ScaledObject leave the console alone", func(t *testing.T) {
			labels := d.Spec.Template.Metadata.Labels
			assert.False(t, selects(m.service.Spec.Selector, labels), "Service %s", m.service.Metadata.Name)
			assert.False(t, selects(m.pdb.Spec.Selector.MatchLabels, labels), "PodDisruptionBudget %s", m.pdb.Metadata.Name)
			assert.NotEqual(t, d.Metadata.Name, m.scaledObject.Spec.ScaleTargetRef.Name, "KEDA scales the service only")
		}},
		{"runs the console from the service's image", func(t *testing.T) {
			assert.Empty(t, c.Command, "keep the image's entrypoint /consumer")
			assert.Equal(t, []string{"console"}, c.Args)
			assert.Equal(t, m.deployment.Spec.Template.Spec.container(t).Image, c.Image)
		}},
		{"every variable is one the console reads", func(t *testing.T) {
			require.NotEmpty(t, c.Env)
			for _, e := range c.Env {
				assert.True(t, knownVar(vars, e.Name), "%s is not a variable of consumer console (%s, %s)", e.Name, consoleGo, configGo)
			}
			assert.Empty(t, c.EnvFrom, "name the console's variables one by one: the service's ConfigMap holds many it does not read")
		}},
		{"listens on every interface, on its container port", func(t *testing.T) {
			assert.False(t, host == "127.0.0.1" || host == "localhost" || host == "::1", "CONSOLE_ADDR %s is loopback: the Service could not reach it", host)
			require.Len(t, c.Ports, 1)
			assert.Equal(t, port, c.Ports[0].ContainerPort)
		}},
		{"requires a sign-in, with the password from a mounted file", func(t *testing.T) {
			_, user := env["CONSOLE_USER"]
			_, pw := env["CONSOLE_PASSWORD"]
			_, pwFile := env["CONSOLE_PASSWORD_FILE"]
			assert.True(t, user, "CONSOLE_USER")
			assert.False(t, pw, "give the password as CONSOLE_PASSWORD_FILE, not in the environment")
			require.True(t, pwFile, "CONSOLE_PASSWORD_FILE")
			file := c.Env[env["CONSOLE_PASSWORD_FILE"]].Value
			dir, key := path.Split(file)
			var mounted bool
			for _, vm := range c.VolumeMounts {
				for _, v := range pod.Volumes {
					if v.Name != vm.Name || v.Secret == nil || vm.MountPath != strings.TrimSuffix(dir, "/") {
						continue
					}
					mounted = true
					assert.True(t, vm.ReadOnly, "secret volume %s is mounted writable", v.Name)
					assert.Equal(t, m.consoleSecret.Metadata.Name, v.Secret.SecretName)
					paths := []string{}
					for _, it := range v.Secret.Items {
						paths = append(paths, it.Path)
						assert.Contains(t, m.consoleSecret.StringData, it.Key, "the secret has no key %s", it.Key)
					}
					if len(paths) > 0 {
						assert.Contains(t, paths, key, "%s is not among the mounted keys", key)
					} else {
						assert.Contains(t, m.consoleSecret.StringData, key)
					}
				}
			}
			assert.True(t, mounted, "CONSOLE_PASSWORD_FILE=%s is on no mounted secret", file)
		}},
		{"references name existing keys", func(t *testing.T) {
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				switch {
				case e.ValueFrom.ConfigMapKeyRef != nil:
					ref := e.ValueFrom.ConfigMapKeyRef
					assert.Equal(t, m.configMap.Metadata.Name, ref.Name, e.Name)
					assert.Contains(t, m.configMap.Data, ref.Key, e.Name)
					assert.Equal(t, e.Name, ref.Key, "%s reads another variable's value", e.Name)
				case e.ValueFrom.SecretKeyRef != nil:
					ref := e.ValueFrom.SecretKeyRef
					assert.Equal(t, m.consoleSecret.Metadata.Name, ref.Name, e.Name)
					assert.Contains(t, m.consoleSecret.StringData, ref.Key, e.Name)
					assert.False(t, vars[e.Name].secret, "%s is a secret: give it as %s_FILE", e.Name, e.Name)
				default:
					t.Errorf("%s: valueFrom neither a ConfigMap nor a Secret key", e.Name)
				}
			}
		}},
		{"same NATS as the service", func(t *testing.T) {
			i, ok := env["NATS_URL"]
			require.True(t, ok, "NATS_URL")
			ref := c.Env[i].ValueFrom
			require.True(t, ref != nil && ref.ConfigMapKeyRef != nil, "NATS_URL from the service's ConfigMap, so the two cannot differ")
		}},
		{"secret keys are console settings or its NATS user's secret", func(t *testing.T) {
			require.NotEmpty(t, m.consoleSecret.StringData)
			service := serviceSettings(t)
			for k := range m.consoleSecret.StringData {
				if strings.HasPrefix(k, "NATS_") {
					assert.True(t, service[k].secret, "%s in console-secret.yaml is not a secret NATS setting", k)
					continue
				}
				assert.Contains(t, consoleSettings(t), k)
			}
		}},
		{"probes hit a page the console serves without a session", func(t *testing.T) {
			served := consoleRoutes(t)
			for _, p := range []struct {
				name  string
				probe *probe
			}{{"startupProbe", c.StartupProbe}, {"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}} {
				require.NotNil(t, p.probe, p.name)
				require.NotNil(t, p.probe.HTTPGet, p.name)
				assert.Equal(t, "/login", p.probe.HTTPGet.Path, p.name)
				assert.Contains(t, served, "GET "+p.probe.HTTPGet.Path, "%s: the console serves no such page", p.name)
				assert.Equal(t, port, containerPort(t, c, p.probe.HTTPGet.Port), p.name)
			}
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
		{"resources are bounded", func(t *testing.T) {
			for _, k := range []string{"cpu", "memory"} {
				assert.NotEmpty(t, c.Resources.Requests[k], "requests.%s", k)
				assert.NotEmpty(t, c.Resources.Limits[k], "limits.%s", k)
			}
			assert.LessOrEqual(t, milliCPU(t, c.Resources.Requests["cpu"]), milliCPU(t, c.Resources.Limits["cpu"]))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// consoleRoutes lists the "METHOD /path" patterns the console's handler
// registers, read from its source.
func consoleRoutes(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(consoleServerDir, "*.go"))
	require.NoError(t, err)
	var b strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		b.Write(src)
	}
	return b.String()
}

func TestConsoleServiceAndProxy(t *testing.T) {
	m := loadManifests(t)
	c := m.console.Spec.Template.Spec.container(t)
	_, port := consolePort(t, c)
	svc := m.consoleService
	ing := m.consoleIngress
	var values oauth2ProxyValues
	decodeFile(t, oauth2Values, &values)

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"service selects the console's pods only", func(t *testing.T) {
			assert.True(t, selects(svc.Spec.Selector, m.console.Spec.Template.Metadata.Labels))
			assert.False(t, selects(svc.Spec.Selector, m.deployment.Spec.Template.Metadata.Labels))
		}},
		{"service is ClusterIP on the console's port", func(t *testing.T) {
			assert.Contains(t, []string{"", "ClusterIP"}, svc.Spec.Type, "reach the console through the proxy, not a LoadBalancer")
			require.Len(t, svc.Spec.Ports, 1)
			assert.Equal(t, port, containerPort(t, c, svc.Spec.Ports[0].TargetPort))
		}},
		{"the proxy's upstream is the console's Service", func(t *testing.T) {
			u, err := url.Parse(values.ExtraArgs["upstream"])
			require.NoError(t, err)
			assert.Equal(t, "http", u.Scheme)
			assert.Equal(t, svc.Metadata.Name+"."+m.kustomization.Namespace+".svc", u.Hostname())
			assert.Equal(t, strconv.Itoa(svc.Spec.Ports[0].Port), u.Port())
		}},
		{"the proxy signs people in", func(t *testing.T) {
			assert.NotEmpty(t, values.ExtraArgs["provider"])
			assert.NotEmpty(t, values.Config.ExistingSecret, "client and cookie secrets from a Secret, not the values")
			assert.NotEmpty(t, values.Config.EmailDomains)
			assert.NotContains(t, values.Config.EmailDomains, "*", "not every address of the identity provider")
			assert.Equal(t, "true", values.ExtraArgs["cookie-secure"])
			assert.Equal(t, "true", values.ExtraArgs["pass-host-header"], "the console checks a POST's Origin against Host")
		}},
		{"the ingress sends everything to the proxy, over TLS", func(t *testing.T) {
			require.Len(t, ing.Spec.Rules, 1)
			rule := ing.Spec.Rules[0]
			require.NotEmpty(t, rule.HTTP.Paths)
			for _, p := range rule.HTTP.Paths {
				assert.Equal(t, oauth2ProxyRelease, p.Backend.Service.Name, "path %s: only the proxy, never the console itself", p.Path)
				assert.NotEqual(t, svc.Metadata.Name, p.Backend.Service.Name)
			}
			require.Len(t, ing.Spec.TLS, 1)
			assert.Contains(t, ing.Spec.TLS[0].Hosts, rule.Host)
			assert.NotEmpty(t, ing.Spec.TLS[0].SecretName)
			redirect, err := url.Parse(values.ExtraArgs["redirect-url"])
			require.NoError(t, err)
			assert.Equal(t, "https", redirect.Scheme)
			assert.Equal(t, rule.Host, redirect.Host, "the proxy's redirect URL is the Ingress host's")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func TestNetworkPolicies(t *testing.T) {
	settings := serviceSettings(t)
	m := loadManifests(t)
	consumerPods := m.deployment.Spec.Template.Metadata.Labels
	consolePods := m.console.Spec.Template.Metadata.Labels
	consumerC := m.deployment.Spec.Template.Spec.container(t)
	_, consolePortN := consolePort(t, m.console.Spec.Template.Spec.container(t))
	metricsPort := httpAddrPort(t, settings, m.configMap)

	// The NATS of NATS_URL: nats.<namespace>.svc, port 4222.
	natsNS := ""
	for _, h := range natsHosts(t, m.configMap.Data["NATS_URL"]) {
		parts := strings.Split(h, ".")
		require.GreaterOrEqual(t, len(parts), 2, "NATS_URL host %s: want <service>.<namespace>[.svc…]", h)
		natsNS = parts[1]
	}

	// portsOf lists a rule's ports as "TCP/8080", resolving names against
	// the container c.
	portsOf := func(t *testing.T, r policyRule, c container) []string {
		var out []string
		for _, p := range r.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = "TCP"
			}
			out = append(out, proto+"/"+strconv.Itoa(containerPort(t, c, p.Port)))
		}
		return out
	}
	// egressTo finds the rule whose peers are in namespace ns with pods
	// labelled so.
	egressTo := func(p networkPolicy, ns string, pods map[string]string) *policyRule {
		for i, r := range p.Spec.Egress {
			for _, peer := range r.To {
				if peer.NamespaceSelector != nil && peer.PodSelector != nil &&
					peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == ns &&
					selects(peer.PodSelector.MatchLabels, pods) {
					return &p.Spec.Egress[i]
				}
			}
		}
		return nil
	}
	dnsPods := map[string]string{"k8s-app": "kube-dns"}

	for _, pc := range []struct {
		name   string
		policy networkPolicy
		pods   map[string]string
		others map[string]string
		c      container
	}{
		{"consumer", m.consumerPolicy, consumerPods, consolePods, consumerC},
		{"console", m.consolePolicy, consolePods, consumerPods, m.console.Spec.Template.Spec.container(t)},
	} {
		p := pc.policy
		t.Run(pc.name+": selects its pods only", func(t *testing.T) {
			assert.True(t, selects(p.Spec.PodSelector.MatchLabels, pc.pods))
			assert.False(t, selects(p.Spec.PodSelector.MatchLabels, pc.others))
		})
		t.Run(pc.name+": restricts both ways", func(t *testing.T) {
			assert.ElementsMatch(t, []string{"Ingress", "Egress"}, p.Spec.PolicyTypes)
		})
		t.Run(pc.name+": no rule is open to everything", func(t *testing.T) {
			for i, r := range p.Spec.Ingress {
				assert.NotEmpty(t, r.From, "ingress rule %d admits every source", i)
				assert.NotEmpty(t, r.Ports, "ingress rule %d admits every port", i)
			}
			for i, r := range p.Spec.Egress {
				assert.NotEmpty(t, r.To, "egress rule %d reaches every destination", i)
				assert.NotEmpty(t, r.Ports, "egress rule %d reaches every port", i)
				for _, peer := range r.To {
					if peer.IPBlock != nil {
						_, n, err := net.ParseCIDR(peer.IPBlock.CIDR)
						require.NoError(t, err, "egress rule %d: cidr %q", i, peer.IPBlock.CIDR)
						ones, _ := n.Mask.Size()
						assert.Positive(t, ones, "egress rule %d: %s is every address", i, peer.IPBlock.CIDR)
					}
					if peer.NamespaceSelector != nil {
						assert.NotEmpty(t, peer.NamespaceSelector.MatchLabels, "egress rule %d: every namespace", i)
					}
				}
			}
		})
		t.Run(pc.name+": reaches the NATS servers on 4222", func(t *testing.T) {
			r := egressTo(p, natsNS, natsPods)
			require.NotNil(t, r, "no egress rule to the NATS pods in namespace %s", natsNS)
			assert.Equal(t, []string{"TCP/4222"}, portsOf(t, *r, pc.c))
		})
		t.Run(pc.name+": reaches DNS", func(t *testing.T) {
			r := egressTo(p, "kube-system", dnsPods)
			require.NotNil(t, r, "no egress rule to kube-dns")
			assert.ElementsMatch(t, []string{"UDP/53", "TCP/53"}, portsOf(t, *r, pc.c))
		})
	}

	t.Run("consumer: metrics and health only from the monitoring namespace", func(t *testing.T) {
		p := m.consumerPolicy
		require.Len(t, p.Spec.Ingress, 1)
		r := p.Spec.Ingress[0]
		assert.Equal(t, []string{"TCP/" + strconv.Itoa(metricsPort)}, portsOf(t, r, consumerC))
		require.Len(t, r.From, 1)
		require.NotNil(t, r.From[0].NamespaceSelector)
		assert.Nil(t, r.From[0].IPBlock)
		assert.Equal(t, map[string]string{"kubernetes.io/metadata.name": "monitoring"}, r.From[0].NamespaceSelector.MatchLabels)
	})
	t.Run("consumer: the providers' ranges on 443", func(t *testing.T) {
		var found bool
		for _, r := range m.consumerPolicy.Spec.Egress {
			var blocks int
			for _, peer := range r.To {
				if peer.IPBlock != nil {
					blocks++
				}
			}
			if blocks == 0 {
				continue
			}
			found = true
			assert.Equal(t, blocks, len(r.To), "address ranges and selectors in one rule")
			assert.Equal(t, []string{"TCP/443"}, portsOf(t, r, consumerC))
		}
		assert.True(t, found, "an egress rule with the providers' address ranges")
	})
	t.Run("console: only from the proxy, on its port", func(t *testing.T) {
		p := m.consolePolicy
		require.Len(t, p.Spec.Ingress, 1)
		r := p.Spec.Ingress[0]
		assert.Equal(t, []string{"TCP/" + strconv.Itoa(consolePortN)}, portsOf(t, r, m.console.Spec.Template.Spec.container(t)))
		require.Len(t, r.From, 1)
		peer := r.From[0]
		assert.Nil(t, peer.NamespaceSelector, "the proxy in the console's own namespace")
		assert.Nil(t, peer.IPBlock)
		require.NotNil(t, peer.PodSelector)
		assert.True(t, selects(peer.PodSelector.MatchLabels, oauth2ProxyPods), "the selector picks oauth2-proxy's pods")
	})
	t.Run("console: calls no provider", func(t *testing.T) {
		for i, r := range m.consolePolicy.Spec.Egress {
			for _, peer := range r.To {
				assert.Nil(t, peer.IPBlock, "egress rule %d: the console reaches NATS and DNS only", i)
			}
		}
	})
}

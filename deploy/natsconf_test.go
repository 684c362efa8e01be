package deploy

import (
	"crypto/tls"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// natsUser is one user of deploy/nats as the test compares them: its
// account and its permissions.
type natsUser struct {
	Account                 string
	PublishAllow, PubDeny   []string
	SubscribeAllow, SubDeny []string
	AllowResponses          bool
}

// helmNATSAccounts is the part of deploy/nats/values.yaml holding the
// accounts, as the chart merges it into the server's configuration.
type helmNATSAccounts struct {
	Config struct {
		Nats struct {
			TLS struct {
				Enabled    bool   `yaml:"enabled"`
				SecretName string `yaml:"secretName"`
			} `yaml:"tls"`
		} `yaml:"nats"`
		Cluster struct {
			TLS struct {
				Enabled    bool   `yaml:"enabled"`
				SecretName string `yaml:"secretName"`
				Merge      struct {
					Verify bool   `yaml:"verify"`
					CAFile string `yaml:"ca_file"`
				} `yaml:"merge"`
			} `yaml:"tls"`
		} `yaml:"cluster"`
		Merge struct {
			SystemAccount string `yaml:"system_account"`
			Accounts      map[string]struct {
				JetStream string `yaml:"jetstream"`
				Users     []struct {
					Nkey        string `yaml:"nkey"`
					Permissions *struct {
						Publish        helmSubjects `yaml:"publish"`
						Subscribe      helmSubjects `yaml:"subscribe"`
						AllowResponses bool         `yaml:"allow_responses"`
					} `yaml:"permissions"`
				} `yaml:"users"`
			} `yaml:"accounts"`
		} `yaml:"merge"`
	} `yaml:"config"`
	Container struct {
		// A value is a string or a valueFrom.
		Env map[string]yaml.Node `yaml:"env"`
	} `yaml:"container"`
}

type helmSubjects struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

var helmVariable = regexp.MustCompile(`^<< \$([A-Z][A-Z0-9_]*) >>$`)

// TestNATSHelmValuesAgree: the Helm values render the accounts, users and
// permissions of nats-server.conf, user for user, each user's public nkey
// from the same variable, which the chart's container takes from a Secret;
// both require TLS; KEDA reads the account the users are in.
func TestNATSHelmValuesAgree(t *testing.T) {
	opts := loadNATSConf(t, prepareSecuredNATS(t))
	byKey := map[string]string{} // public nkey → its variable
	for _, env := range natsRoleKeys {
		byKey[os.Getenv(env)] = env
	}
	conf := map[string]natsUser{}
	for _, u := range opts.Nkeys {
		env, ok := byKey[u.Nkey]
		require.True(t, ok, "nats-server.conf has a user whose nkey is none of %v", natsRoleKeys)
		nu := natsUser{Account: u.Account.Name}
		if p := u.Permissions; p != nil {
			if p.Publish != nil {
				nu.PublishAllow, nu.PubDeny = p.Publish.Allow, p.Publish.Deny
			}
			if p.Subscribe != nil {
				nu.SubscribeAllow, nu.SubDeny = p.Subscribe.Allow, p.Subscribe.Deny
			}
			nu.AllowResponses = p.Response != nil
		}
		conf[env] = nu
	}
	assert.Len(t, conf, len(natsRoleKeys), "nats-server.conf has a user per role and the system user")
	assert.Empty(t, opts.Users, "nats-server.conf has no password users")

	var v helmNATSAccounts
	decodeFile(t, helmValues, &v)
	helm := map[string]natsUser{}
	for account, a := range v.Config.Merge.Accounts {
		for _, u := range a.Users {
			m := helmVariable.FindStringSubmatch(u.Nkey)
			require.NotNil(t, m, "values.yaml: user nkey %q is not a variable << $X >>", u.Nkey)
			nu := natsUser{Account: account}
			if p := u.Permissions; p != nil {
				nu.PublishAllow, nu.PubDeny = p.Publish.Allow, p.Publish.Deny
				nu.SubscribeAllow, nu.SubDeny = p.Subscribe.Allow, p.Subscribe.Deny
				nu.AllowResponses = p.AllowResponses
			}
			helm[m[1]] = nu
			var ref struct {
				ValueFrom struct {
					SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
				} `yaml:"valueFrom"`
			}
			env := v.Container.Env[m[1]]
			require.NoError(t, env.Decode(&ref), "values.yaml: container.env.%s is a valueFrom", m[1])
			assert.Equal(t, "nats-users", ref.ValueFrom.SecretKeyRef.Name, "values.yaml: %s comes from the Secret nats-users", m[1])
			assert.Equal(t, m[1], ref.ValueFrom.SecretKeyRef.Key, "values.yaml: %s is its own key in the Secret", m[1])
		}
	}
	assert.Equal(t, conf, helm, "values.yaml's users and permissions are nats-server.conf's (variable → account and permissions)")
	assert.Equal(t, opts.SystemAccount, v.Config.Merge.SystemAccount, "the system account")
	account := conf[natsRoleKeys["service"]].Account
	assert.Equal(t, "enabled", v.Config.Merge.Accounts[account].JetStream, "values.yaml: JetStream in %s", account)

	assert.NotNil(t, opts.TLSConfig, "nats-server.conf requires TLS")
	assert.True(t, v.Config.Nats.TLS.Enabled, "values.yaml requires TLS")
	assert.NotEmpty(t, v.Config.Nats.TLS.SecretName, "values.yaml names the TLS Secret")
	require.NotNil(t, opts.Cluster.TLSConfig, "nats-server.conf: routes speak TLS")
	assert.Equal(t, tls.RequireAndVerifyClientCert, opts.Cluster.TLSConfig.ClientAuth, "nats-server.conf: a route proves itself (verify)")
	assert.True(t, v.Config.Cluster.TLS.Enabled, "values.yaml: routes speak TLS")
	assert.Equal(t, v.Config.Nats.TLS.SecretName, v.Config.Cluster.TLS.SecretName, "values.yaml: the routes' certificate is the servers'")
	assert.True(t, v.Config.Cluster.TLS.Merge.Verify, "values.yaml: a route proves itself (verify)")
	assert.NotEmpty(t, v.Config.Cluster.TLS.Merge.CAFile, "values.yaml: the CA routes are checked with")

	m := loadManifests(t)
	require.Len(t, m.scaledObject.Spec.Triggers, 1)
	assert.Equal(t, account, m.scaledObject.Spec.Triggers[0].Metadata["account"], "KEDA reads the consumer of the account the users are in")
}

// TestNATSNetworkPolicy: deploy/nats/networkpolicy.yaml lets clients reach
// NATS from any namespace (TLS and the users decide the rest), the routes
// only from the servers, and the monitoring port, which has no sign-in,
// only from KEDA's and Prometheus's namespaces.
func TestNATSNetworkPolicy(t *testing.T) {
	var p networkPolicy
	decodeFile(t, "nats/networkpolicy.yaml", &p)
	var values helmValuesConfig
	decodeFile(t, helmValues, &values)
	require.Equal(t, "NetworkPolicy", p.Kind)
	assert.Equal(t, "nats", p.Metadata.Namespace, "the namespace of the release nats")
	assert.Equal(t, natsPods, p.Spec.PodSelector.MatchLabels, "the NATS servers' pods")
	assert.Contains(t, p.Spec.PolicyTypes, "Ingress")

	byPort := map[int][]policyPeer{}
	for _, r := range p.Spec.Ingress {
		require.NotEmpty(t, r.Ports, "a rule without ports opens every port")
		require.NotEmpty(t, r.From, "a rule without peers lets everyone in")
		for _, port := range r.Ports {
			n, ok := port.Port.(int)
			require.True(t, ok, "port %v is a number", port.Port)
			byPort[n] = append(byPort[n], r.From...)
		}
	}
	monitor := values.Config.Monitor.Port
	assert.ElementsMatch(t, []int{4222, 6222, monitor}, slices.Collect(maps.Keys(byPort)), "clients, routes and monitoring only")

	t.Run("clients from every namespace", func(t *testing.T) {
		require.Len(t, byPort[4222], 1)
		peer := byPort[4222][0]
		require.NotNil(t, peer.NamespaceSelector)
		assert.Empty(t, peer.NamespaceSelector.MatchLabels, "every namespace")
		assert.Nil(t, peer.PodSelector)
	})
	t.Run("routes from the servers only", func(t *testing.T) {
		for _, peer := range byPort[6222] {
			assert.Nil(t, peer.NamespaceSelector, "the policy's own namespace")
			require.NotNil(t, peer.PodSelector)
			assert.Equal(t, natsPods, peer.PodSelector.MatchLabels)
		}
	})
	t.Run("monitoring from KEDA and Prometheus only", func(t *testing.T) {
		var namespaces []string
		for _, peer := range byPort[monitor] {
			assert.Nil(t, peer.PodSelector)
			assert.Nil(t, peer.IPBlock)
			require.NotNil(t, peer.NamespaceSelector, "a namespace, never every pod")
			name := peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
			require.NotEmpty(t, name, "a namespace by name, never every namespace")
			namespaces = append(namespaces, name)
		}
		assert.ElementsMatch(t, []string{"keda", "monitoring"}, namespaces)
	})
}

// TestNATSRolesOfThePods: each pod of deploy/kubernetes connects as its
// role of deploy/nats: over TLS (tls:// and the CA), with a seed from its
// own Secret, and the inbox prefix its user may subscribe to; the
// configuration lets each role read its own prefix's replies and no other
// role's.
func TestNATSRolesOfThePods(t *testing.T) {
	opts := loadNATSConf(t, prepareSecuredNATS(t))
	subscribe := map[string][]string{} // role → subscribe allow
	for role, env := range natsRoleKeys {
		for _, u := range opts.Nkeys {
			if u.Nkey == os.Getenv(env) && u.Permissions != nil && u.Permissions.Subscribe != nil {
				subscribe[role] = u.Permissions.Subscribe.Allow
			}
		}
	}
	for role, prefix := range natsInboxPrefixes {
		assert.Contains(t, subscribe[role], prefix+".>", "%s may read its replies", role)
		for other, theirs := range natsInboxPrefixes {
			if other != role {
				assert.NotContains(t, subscribe[role], theirs+".>", "%s may not read %s's replies", role, other)
			}
		}
	}

	m := loadManifests(t)
	envOf := func(c container, name string) (string, bool) {
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value, e.ValueFrom != nil
			}
		}
		return "", false
	}
	assert.True(t, strings.HasPrefix(m.configMap.Data["NATS_URL"], "tls://"), "NATS_URL says TLS")
	assert.NotEmpty(t, m.configMap.Data["NATS_TLS_CA"], "the CA the servers' certificate is checked with")
	assert.Equal(t, natsInboxPrefixes["service"], m.configMap.Data["NATS_INBOX_PREFIX"], "the service's (and the setup Job's) prefix")

	for _, tc := range []struct {
		name   string
		c      container
		prefix string // "" for the ConfigMap's
	}{
		{"service", m.deployment.Spec.Template.Spec.Containers[0], ""},
		{"setup Job", m.job.Spec.Template.Spec.Containers[0], ""},
		{"console", m.console.Spec.Template.Spec.Containers[0], natsInboxPrefixes["console"]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed, _ := envOf(tc.c, "NATS_NKEY_FILE")
			assert.NotEmpty(t, seed, "its user's seed, from its Secret")
			if tc.prefix != "" {
				got, _ := envOf(tc.c, "NATS_INBOX_PREFIX")
				assert.Equal(t, tc.prefix, got)
			}
		})
	}
}

// TestNATSRoutes: two servers of nats-server.conf (the same certificates)
// form a route over TLS; a server whose certificate the CA did not sign is
// refused, the refusal logged by the cluster's server.
func TestNATSRoutes(t *testing.T) {
	f := prepareSecuredNATS(t)
	start := func(name string, routes []*url.URL, log server.Logger, trustAnyone bool) *server.Server {
		t.Helper()
		opts := loadNATSConf(t, f)
		require.NotNil(t, opts.Cluster.TLSConfig, "routes speak TLS")
		if trustAnyone {
			// A stranger that trusts any server: only the cluster's own
			// check of the stranger's certificate (verify) keeps it out.
			// Its route address leads nowhere, so that nats-a's only TLS
			// errors are its checks of the stranger's connections.
			opts.Cluster.TLSConfig.InsecureSkipVerify = true
			opts.Cluster.Advertise = "127.0.0.1:1"
		}
		opts.ServerName, opts.Host, opts.Port, opts.HTTPPort = name, "127.0.0.1", -1, 0
		opts.Cluster.Host, opts.Cluster.Port, opts.Routes = "127.0.0.1", -1, routes
		// Routes only: a JetStream cluster of two would wait for its
		// third server's vote.
		opts.JetStream = false
		opts.NoSigs = true
		s, err := server.NewServer(opts)
		require.NoError(t, err)
		if log != nil {
			s.SetLoggerV2(log, true, false, false) // a route's TLS error may be logged at debug level
		}
		s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		require.True(t, s.ReadyForConnections(10*time.Second), "%s did not start", name)
		return s
	}
	seen := &lineLog{want: "TLS route handshake error: tls: failed to verify certificate"}
	a := start("nats-a", nil, seen, false)
	routeURL, err := url.Parse(fmt.Sprintf("nats-route://127.0.0.1:%d", a.ClusterAddr().Port))
	require.NoError(t, err)
	b := start("nats-b", []*url.URL{routeURL}, nil, false)
	require.Eventually(t, func() bool { return a.NumRoutes() > 0 && b.NumRoutes() > 0 }, 10*time.Second, 20*time.Millisecond,
		"the two servers form a route over TLS")

	// A stranger: its own CA's certificate, in the same configuration.
	stranger := t.TempDir()
	writeCertificates(t, stranger)
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		b, err := os.ReadFile(filepath.Join(stranger, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(f.Dir, name), b, 0o600))
	}
	s := start("nats-stranger", []*url.URL{routeURL}, nil, true)
	require.Eventually(t, seen.found, 10*time.Second, 20*time.Millisecond,
		"nats-a refuses the stranger's route: its certificate is not the cluster CA's (verify)")
	// (A route to a peer may be several connections, a pool: count the
	// stranger's, not nats-a's.)
	assert.Zero(t, s.NumRoutes(), "no route to the stranger")
}

package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The flags' documentation is docs/CLI.md: a section per command, headed
// "## `consumer <command>`", whose table has a row per flag of its own,
// starting "| `--flag"; a section "## Connection flags" with a row per
// connection flag; and "## Service settings" with a row per setting.
// TestEveryFlagIsDocumented walks every command's flags (as its -h lists
// them) and compares them with those rows, both ways.
const cliDoc = "../../docs/CLI.md"

var (
	docHeading = regexp.MustCompile("(?m)^#{2,3} (.+)$")
	docFlagRow = regexp.MustCompile("(?m)^\\|\\s*`--([a-z0-9-]+)")
	subcommand = regexp.MustCompile(`consumer ([a-z-]+) ([a-z-]+) \[flags\]`)
)

// cliSections returns docs/CLI.md's sections by heading (without its
// backticks), each with its text.
func cliSections(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile(cliDoc)
	require.NoError(t, err, "the flags are documented in docs/CLI.md")
	text := string(src)
	sections := map[string]string{}
	idx := docHeading.FindAllStringSubmatchIndex(text, -1)
	for i, m := range idx {
		end := len(text)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		sections[strings.ReplaceAll(text[m[2]:m[3]], "`", "")] = text[m[1]:end]
	}
	return sections
}

func documentedFlags(section string) []string {
	var flags []string
	for _, m := range docFlagRow.FindAllStringSubmatch(section, -1) {
		flags = append(flags, m[1])
	}
	return flags
}

// commandHelp is what one command's -h says.
type commandHelp struct {
	text                      string
	own, connection, settings []string
}

// commandsAndHelp returns every command 'consumer help' lists, and the
// subcommands their help names ("failures discard"), with their help;
// a command without flags (version) has none.
func commandsAndHelp(t *testing.T) ([]string, map[string]*commandHelp) {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"help"}, func(string) string { return "" }, nil, &out, &out))
	_, list, ok := strings.Cut(out.String(), "commands:\n")
	require.True(t, ok, "consumer help lists its commands:\n%s", out.String())
	var cmds []string
	for _, line := range strings.Split(list, "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		cmds = append(cmds, strings.Fields(line)[0])
	}
	require.NotEmpty(t, cmds)
	helps := map[string]*commandHelp{}
	for i := 0; i < len(cmds); i++ {
		cmd := cmds[i]
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), append(strings.Fields(cmd), "-h"), func(string) string { return "" }, nil, &stdout, &stderr)
		if !errors.Is(err, flag.ErrHelp) {
			continue // no flags
		}
		h := &commandHelp{text: stderr.String()}
		titles, flags := helpSections(h.text)
		require.NotEmpty(t, titles, "consumer %s -h lists its flags", cmd)
		h.own, h.connection, h.settings = flags[ownTitle], flags[connectionTitle], flags[serviceTitle]
		helps[cmd] = h
		for _, m := range subcommand.FindAllStringSubmatch(h.text, -1) {
			if sub := m[1] + " " + m[2]; m[1] == cmd && !slices.Contains(cmds, sub) {
				cmds = append(cmds, sub)
			}
		}
	}
	return cmds, helps
}

func TestEveryFlagIsDocumented(t *testing.T) {
	sections := cliSections(t)
	cmds, helps := commandsAndHelp(t)
	require.Contains(t, cmds, "failures discard", "subcommands are found in their parent's help")

	var connection []string
	for _, cmd := range cmds {
		name := "consumer " + cmd
		section, ok := sections[name]
		if !assert.True(t, ok, "docs/CLI.md has no section for %s: add a heading \"## `%s`\" with a table of its flags", name, name) {
			continue
		}
		h := helps[cmd]
		if h == nil {
			assert.Empty(t, documentedFlags(section), "docs/CLI.md documents flags for %s, which has none", name)
			continue
		}
		documented := documentedFlags(section)
		for _, f := range h.own {
			assert.Contains(t, documented, f, "%s --%s is not documented: add a row \"| `--%s` | … |\" to docs/CLI.md's section %s", name, f, f, name)
		}
		for _, f := range documented {
			assert.Contains(t, h.own, f, "docs/CLI.md documents %s --%s, but the command has no such flag of its own", name, f)
		}
		for _, f := range h.settings {
			if cmd == "run" || cmd == "dev" {
				continue // all of them: the Service settings section
			}
			assert.Contains(t, section, "`--"+f+"`", "%s takes the setting --%s: say so in docs/CLI.md's section %s", name, f, name)
		}
		for _, f := range h.connection {
			if !slices.Contains(connection, f) {
				connection = append(connection, f)
			}
		}
	}

	t.Run("connection flags", func(t *testing.T) {
		documented := documentedFlags(sections["Connection flags"])
		require.NotEmpty(t, documented, "docs/CLI.md has a section \"## Connection flags\" with a row per flag")
		assert.ElementsMatch(t, connection, documented, "docs/CLI.md's Connection flags are every command's connection flags")
	})
	t.Run("service settings", func(t *testing.T) {
		documented := documentedFlags(sections["Service settings"])
		require.NotEmpty(t, documented, "docs/CLI.md has a section \"## Service settings\" with a row per setting")
		var all []string
		for _, s := range allSettings() {
			if !s.Connection() {
				all = append(all, s.Flag)
			}
		}
		for _, f := range all {
			assert.Contains(t, documented, f, "the setting --%s is not documented in docs/CLI.md's Service settings", f)
		}
		for _, f := range documented {
			assert.Contains(t, all, f, "docs/CLI.md's Service settings document --%s, which is no setting", f)
		}
		assert.ElementsMatch(t, helps["run"].settings, all, "run takes every setting as a flag")
	})
	t.Run("the README's commands table", func(t *testing.T) {
		src, err := os.ReadFile("../../README.md")
		require.NoError(t, err)
		for _, cmd := range cmds {
			if !strings.Contains(cmd, " ") {
				assert.Contains(t, string(src), "| `consumer "+cmd, "README.md's commands table has no row for consumer %s", cmd)
			}
		}
	})
}

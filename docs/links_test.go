package docs

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// TestMarkdownLinksStayInTheRepository checks every relative link of every
// tracked Markdown file (git ls-files '*.md'): it must name a tracked file,
// or a folder holding one, inside the repository, and must not climb out
// of it (../outside/CONTRACT.md from the root is refused, even where such a
// file happens to exist on this machine). A #fragment pointing into a
// Markdown file, the same one or another, must name one of its headings.
// Web links (http, https), mailto links and links inside code are not
// checked; any other scheme (file:) and absolute paths are refused, since
// they cannot resolve inside a clone.

// up is "../", spelled apart so that no tool takes the test data for a
// link of this repository's own.
const up = ".." + "/"

func TestMarkdownLinksStayInTheRepository(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the repository root %s has no go.mod: %v", root, err)
	}
	files := trackedFiles(t, root)
	r := newRepo(files, func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	})
	var checked, links int
	for _, name := range files {
		if !strings.HasSuffix(name, ".md") {
			continue
		}
		content, err := r.read(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		n, problems := r.check(name, content)
		checked++
		links += n
		for _, p := range problems {
			t.Error(p)
		}
	}
	if checked == 0 {
		t.Fatal("no Markdown file found: the file list is wrong")
	}
	t.Logf("%d Markdown files, %d relative links checked", checked, links)
}

// TestLinkCheckerFindsBadLinks shows what the checker refuses and accepts,
// on files made up for the test.
func TestLinkCheckerFindsBadLinks(t *testing.T) {
	files := map[string]string{
		"README.md": "# Top\n\n## Guarantees, and what bad input gets\n\n" +
			"The contract is [`docs/CONTRACT.md`](docs/CONTRACT.md) and [`../outside/CONTRACT.md`](" + up + "outside/CONTRACT.md).\n" +
			"[ok](#guarantees-and-what-bad-input-gets) [bad anchor](#nowhere) [web](https://example.com/x) [mail](mailto:a@b.c)\n" +
			"[dir](schemas/) [missing](schemas/nope.json) [file scheme](file:///etc/passwd) [abs](/etc/passwd)\n" +
			"[other](docs/CONTRACT.md#names) [other bad](docs/CONTRACT.md#no-such) [escape](docs/../../x.md)\n" +
			"`[in code](" + up + "outside.md)`\n\n```\n[fenced](" + up + "outside.md)\n```\n" +
			"[wrapped\ntext](docs/CONTRACT.md \"a title\") ![img](docs/curve.png)\n\n[ref]: ../up.md\n" +
			"[spaces](<docs/with space.md>) [escaped](docs/with%20space.md)\n",
		"docs/CONTRACT.md":   "# Contract\n\n## Names\n\nBack to [the README](" + up + "README.md#top).\n",
		"docs/curve.png":     "",
		"docs/with space.md": "x\n",
		"schemas/a.json":     "{}",
	}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	r := newRepo(names, func(name string) ([]byte, error) {
		c, ok := files[name]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return []byte(c), nil
	})
	_, problems := r.check("README.md", []byte(files["README.md"]))
	want := []string{
		`README.md:5: link "../outside/CONTRACT.md": points outside the repository`,
		`README.md:6: link "#nowhere": README.md has no heading with that anchor`,
		`README.md:7: link "schemas/nope.json": no file or folder schemas/nope.json in the repository`,
		`README.md:7: link "file:///etc/passwd": the scheme "file" cannot resolve inside the repository`,
		`README.md:7: link "/etc/passwd": an absolute path; write it relative to README.md`,
		`README.md:8: link "docs/CONTRACT.md#no-such": docs/CONTRACT.md has no heading with that anchor`,
		`README.md:8: link "docs/../../x.md": points outside the repository`,
		`README.md:17: link "../up.md": points outside the repository`,
	}
	if strings.Join(problems, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
	if _, problems := r.check("docs/CONTRACT.md", []byte(files["docs/CONTRACT.md"])); len(problems) > 0 {
		t.Errorf("docs/CONTRACT.md: %q", problems)
	}
}

func TestSlugs(t *testing.T) {
	for heading, want := range map[string]string{
		"Guarantees, and what bad input gets": "guarantees-and-what-bad-input-gets",
		"Docker Compose (local cluster)":      "docker-compose-local-cluster",
		"The command: `contact.create`":       "the-command-contactcreate",
		"Planned (not yet built)":             "planned-not-yet-built",
		"A [link](x.md) and **bold** text":    "a-link-and-bold-text",
		"Value, version 2":                    "value-version-2",
		"snake_case and dash-es":              "snake_case-and-dash-es",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

// trackedFiles returns the repository's tracked files, slash-separated
// and relative to root; outside a git checkout, every file but .git's.
func trackedFiles(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = root
	out, err := cmd.Output()
	if err == nil {
		var files []string
		for f := range bytes.SplitSeq(out, []byte{0}) {
			if len(f) > 0 {
				files = append(files, string(f))
			}
		}
		return files
	}
	t.Logf("git ls-files failed (%v): checking every file under %s", err, root)
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// repo is the set of files links may point to.
type repo struct {
	files   map[string]bool
	dirs    map[string]bool
	read    func(name string) ([]byte, error)
	anchors map[string]map[string]bool // by Markdown file, computed when needed
}

func newRepo(files []string, read func(string) ([]byte, error)) *repo {
	r := &repo{files: map[string]bool{}, dirs: map[string]bool{".": true}, read: read, anchors: map[string]map[string]bool{}}
	for _, f := range files {
		r.files[f] = true
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			r.dirs[d] = true
		}
	}
	return r
}

var (
	// inline links and images: [text](dest "title"), ![alt](<dest>)
	inlineLink = regexp.MustCompile(`\]\(\s*(<[^>\n]*>|[^\s)]+)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)`)
	// reference definitions: [label]: dest
	refDef = regexp.MustCompile(`(?m)^ {0,3}\[[^\]\n]+\]:[ \t]*(<[^>\n]*>|\S+)`)
	// HTML attributes
	htmlRef    = regexp.MustCompile(`(?i)\b(?:href|src)\s*=\s*"([^"]*)"`)
	htmlAnchor = regexp.MustCompile(`(?i)<a\s[^>]*\b(?:name|id)\s*=\s*"([^"]*)"`)
	scheme     = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*):`)
	atxHeading = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	setextLine = regexp.MustCompile(`^ {0,3}(?:=+|-+)[ \t]*$`)
	fenceOpen  = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})")
)

// check returns how many relative links name holds, and what is wrong
// with them, as "file:line: ..." lines in the order they appear.
func (r *repo) check(name string, content []byte) (int, []string) {
	text := prose(string(content))
	type found struct {
		at   int
		dest string
	}
	var all []found
	for _, re := range []*regexp.Regexp{inlineLink, refDef, htmlRef} {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			all = append(all, found{at: m[2], dest: text[m[2]:m[3]]})
		}
	}
	slices.SortFunc(all, func(a, b found) int { return a.at - b.at })
	var problems []string
	n := 0
	for _, l := range all {
		dest := strings.TrimSuffix(strings.TrimPrefix(l.dest, "<"), ">")
		problem, relative := r.checkLink(name, dest)
		if relative {
			n++
		}
		if problem != "" {
			line := 1 + strings.Count(text[:l.at], "\n")
			problems = append(problems, fmt.Sprintf("%s:%d: link %q: %s", name, line, dest, problem))
		}
	}
	return n, problems
}

// checkLink returns what is wrong with the link dest in the file name, or
// "", and whether it is a link inside the repository (checked at all).
func (r *repo) checkLink(name, dest string) (problem string, relative bool) {
	if m := scheme.FindStringSubmatch(dest); m != nil {
		switch strings.ToLower(m[1]) {
		case "http", "https", "mailto":
			return "", false
		}
		return fmt.Sprintf("the scheme %q cannot resolve inside the repository", m[1]), true
	}
	if strings.HasPrefix(dest, "//") {
		return "", false // a web link without its scheme
	}
	p, frag, _ := strings.Cut(dest, "#")
	p, _, _ = strings.Cut(p, "?")
	if p == "" { // #anchor in the same file
		if frag == "" {
			return "", true
		}
		return r.checkAnchor(name, frag), true
	}
	unescaped, err := url.PathUnescape(p)
	if err != nil {
		return "cannot be read as a path: " + err.Error(), true
	}
	if strings.HasPrefix(unescaped, "/") || strings.HasPrefix(unescaped, `\`) {
		return "an absolute path; write it relative to " + name, true
	}
	target := path.Clean(path.Join(path.Dir(name), unescaped))
	if target == ".." || strings.HasPrefix(target, "../") {
		return "points outside the repository", true
	}
	switch {
	case r.files[target]:
		if frag != "" && strings.HasSuffix(target, ".md") {
			return r.checkAnchor(target, frag), true
		}
	case r.dirs[target]:
	default:
		return fmt.Sprintf("no file or folder %s in the repository", target), true
	}
	return "", true
}

// checkAnchor returns what is wrong with #frag pointing into the Markdown
// file target, or "".
func (r *repo) checkAnchor(target, frag string) string {
	anchors, ok := r.anchors[target]
	if !ok {
		content, err := r.read(target)
		if err != nil {
			return fmt.Sprintf("cannot read %s: %v", target, err)
		}
		anchors = headingAnchors(string(content))
		r.anchors[target] = anchors
	}
	if f, err := url.PathUnescape(frag); err == nil {
		frag = f
	}
	if anchors[strings.ToLower(frag)] {
		return ""
	}
	return target + " has no heading with that anchor"
}

// prose returns the Markdown text with fenced code blocks and code spans
// blanked out (newlines kept, so that offsets still give line numbers).
func prose(md string) string {
	lines := strings.SplitAfter(md, "\n")
	var fence string
	for i, line := range lines {
		trimmed := strings.TrimRight(line, "\r\n")
		if fence != "" {
			if strings.HasPrefix(strings.TrimLeft(trimmed, " "), fence) &&
				strings.Trim(strings.TrimSpace(trimmed), fence[:1]) == "" {
				fence = ""
			}
			lines[i] = blank(line)
			continue
		}
		if m := fenceOpen.FindStringSubmatch(trimmed); m != nil {
			fence = m[1]
			lines[i] = blank(line)
		}
	}
	return blankCodeSpans(strings.Join(lines, ""))
}

// blankCodeSpans blanks `code spans`: a run of backticks up to the next
// run of the same length within the paragraph. An unmatched run stays.
func blankCodeSpans(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); {
		if b[i] != '`' {
			i++
			continue
		}
		j := i
		for j < len(b) && b[j] == '`' {
			j++
		}
		run := j - i
		end := -1
		for k := j; k < len(b); {
			if b[k] == '\n' && k+1 < len(b) && (b[k+1] == '\n' || b[k+1] == '\r') {
				break // a paragraph ends
			}
			if b[k] != '`' {
				k++
				continue
			}
			l := k
			for l < len(b) && b[l] == '`' {
				l++
			}
			if l-k == run {
				end = l
				break
			}
			k = l
		}
		if end < 0 {
			i = j
			continue
		}
		for k := i; k < end; k++ {
			if b[k] != '\n' {
				b[k] = ' '
			}
		}
		i = end
	}
	return string(b)
}

func blank(line string) string {
	if strings.HasSuffix(line, "\n") {
		return "\n"
	}
	return ""
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown document (duplicates get -1, -2, …), and explicit <a name>s.
func headingAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	add := func(heading string) {
		s := slug(heading)
		if n := seen[s]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", s, n)] = true
		} else {
			anchors[s] = true
		}
		seen[s]++
	}
	// Fenced code is blanked, code spans are not: headings keep their text.
	lines := strings.Split(md, "\n")
	var fence string
	prev := ""
	for _, line := range lines {
		line = strings.TrimRight(line, "\r")
		if fence != "" {
			if strings.HasPrefix(strings.TrimLeft(line, " "), fence) && strings.Trim(strings.TrimSpace(line), fence[:1]) == "" {
				fence = ""
			}
			prev = ""
			continue
		}
		if m := fenceOpen.FindStringSubmatch(line); m != nil {
			fence = m[1]
			prev = ""
			continue
		}
		switch m := atxHeading.FindStringSubmatch(line); {
		case m != nil:
			add(m[1])
			line = ""
		case setextLine.MatchString(line) && strings.TrimSpace(prev) != "" && !paragraphBreaker(prev):
			add(strings.TrimSpace(prev))
			line = ""
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			anchors[strings.ToLower(m[1])] = true
		}
		prev = line
	}
	return anchors
}

// paragraphBreaker reports lines that cannot be a setext heading's text:
// tables, lists, quotes and headings.
func paragraphBreaker(line string) bool {
	t := strings.TrimSpace(line)
	return strings.HasPrefix(t, "|") || strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* ") ||
		strings.HasPrefix(t, "+ ") || strings.HasPrefix(t, ">") || strings.HasPrefix(t, "#")
}

var (
	mdLink  = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag = regexp.MustCompile(`<[^>]+>`)
)

// slug returns the anchor GitHub gives a heading: its text lower-cased,
// without links' targets, HTML tags and punctuation other than - and _,
// with each space a hyphen.
func slug(heading string) string {
	text := mdLink.ReplaceAllString(heading, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_':
			b.WriteRune(r)
		case unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

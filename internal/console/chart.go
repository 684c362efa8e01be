package console

import (
	"fmt"
	"time"
)

// chart is a bar chart of 24 hourly counts, drawn as inline SVG by the
// overview's template (no script, no style attribute).
type chart struct {
	// Label names what is counted, in the plural; Unit is Label or its
	// singular, as Total needs.
	Label, Unit string
	Bars        []bar
	Max, Total  uint64
	// Width and Height are the SVG's view box.
	Width, Height int
	// Ticks label every sixth hour, or every tenth minute.
	Ticks []tick
	// Per is what a bar counts ("hour", "minute"), Span and Short what
	// the chart spans, Busiest the bar's unit in its caption.
	Per, Span, Short, Busiest string
	every                     int
}

type bar struct {
	X, Y, W, H float64
	Count      uint64
	Hour       string
}

type tick struct {
	X    float64
	Text string
}

const (
	chartW, chartH = 480, 120
	chartBase      = 100 // the bars' baseline; the labels go below
)

func barChart(counts [24]uint64, start time.Time, one, many string) chart {
	return bars(counts[:], start, time.Hour, one, many)
}

// bars draws counts, one a step from start: hours (24 h, a tick every
// sixth) or minutes (an hour, a tick every tenth).
func bars(counts []uint64, start time.Time, step time.Duration, one, many string) chart {
	c := chart{Label: many, Width: chartW, Height: chartH, Per: "hour", Span: "24 hours", Short: "24 h", Busiest: "hour", every: 6}
	if step == time.Minute {
		c.Per, c.Span, c.Short, c.Busiest, c.every = "minute", "hour", "1 h", "minute", 10
	}
	for _, n := range counts {
		c.Max = max(c.Max, n)
		c.Total += n
	}
	c.Unit = plural(int(min(c.Total, 2)), one, many)
	slot := float64(chartW) / float64(len(counts))
	for h, n := range counts {
		at := start.Add(time.Duration(h) * step).UTC()
		height := 0.0
		if c.Max > 0 {
			height = float64(n) / float64(c.Max) * (chartBase - 4)
		}
		if n > 0 && height < 1 {
			height = 1
		}
		label := fmt.Sprintf("%s–%02d:00Z", at.Format("Jan 2 15:04"), (at.Hour()+1)%24)
		if step == time.Minute {
			label = fmt.Sprintf("%s–%sZ", at.Format("15:04"), at.Add(step).Format("15:04"))
		}
		c.Bars = append(c.Bars, bar{X: float64(h)*slot + 1, Y: chartBase - height, W: max(slot-2, 1), H: height, Count: n, Hour: label})
		if h%c.every == 0 {
			c.Ticks = append(c.Ticks, tick{X: float64(h)*slot + 1, Text: at.Format("15:04")})
		}
	}
	return c
}

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
	// Ticks label every sixth hour.
	Ticks []tick
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
	c := chart{Label: many, Width: chartW, Height: chartH}
	for _, n := range counts {
		c.Max = max(c.Max, n)
		c.Total += n
	}
	c.Unit = plural(int(min(c.Total, 2)), one, many)
	slot := float64(chartW) / 24
	for h, n := range counts {
		at := start.Add(time.Duration(h) * time.Hour).UTC()
		height := 0.0
		if c.Max > 0 {
			height = float64(n) / float64(c.Max) * (chartBase - 4)
		}
		if n > 0 && height < 1 {
			height = 1
		}
		c.Bars = append(c.Bars, bar{X: float64(h)*slot + 1, Y: chartBase - height, W: slot - 2, H: height, Count: n,
			Hour: fmt.Sprintf("%s–%02d:00Z", at.Format("Jan 2 15:04"), (at.Hour()+1)%24)})
		if h%6 == 0 {
			c.Ticks = append(c.Ticks, tick{X: float64(h)*slot + 1, Text: at.Format("15:04")})
		}
	}
	return c
}

package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/drover-hpc/drover/kpi"
)

// BenchmarkWrite: one Writer.Write per iteration, as an agent member, for batches of 40 series and
// 1, 10, 50 and 125 cycles (40 to 5,000 samples). Reports samples/s.
func BenchmarkWrite(b *testing.B) {
	for _, cycles := range []int{1, 10, 50, 125} {
		b.Run(fmt.Sprintf("samples=%d", cycles*40), func(b *testing.B) {
			d := newTestDB(b, 1)
			w := NewWriter(d.agent, zerolog.Nop(), WriterOptions{})
			ctx := context.Background()
			t0 := time.Now().Add(-time.Hour)
			batch := func(i int) Batch {
				var s []kpi.Sample
				for c := 0; c < cycles; c++ {
					s = append(s, cycleSamples(40, t0.Add(time.Duration(i*cycles+c)*time.Second), float64(c))...)
				}
				return Batch{Host: "hv1", Agent: "bench", Seq: uint64(i + 1), Samples: s}
			}
			if _, err := w.Write(ctx, batch(b.N+1)); err != nil { // series created before timing
				b.Fatal(err)
			}
			bs := make([]Batch, b.N)
			for i := range bs {
				bs[i] = batch(i)
			}
			b.ResetTimer()
			start := time.Now()
			for i := range bs {
				if _, err := w.Write(ctx, bs[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*cycles*40)/time.Since(start).Seconds(), "samples/s")
		})
	}
}

// BenchmarkEncode: the spool's encoding of a batch of 40 series x 25 cycles.
func BenchmarkEncode(b *testing.B) {
	var s []kpi.Sample
	for c := 0; c < 25; c++ {
		s = append(s, cycleSamples(40, time.Now().Add(time.Duration(c)*time.Second), 1)...)
	}
	batch := Batch{Host: "hv1", Agent: "a", Seq: 1, Samples: s}
	b.SetBytes(int64(len(encodeBatch(&batch))))
	for b.Loop() {
		if _, err := decodeBatch(encodeBatch(&batch)); err != nil {
			b.Fatal(err)
		}
	}
}

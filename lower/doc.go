// Package lower builds the graph module of a Qwen3.5 checkpoint for one engine contract (the
// contracts themselves are graph's): Lower reads the architecture from an hf.Config and takes every
// weight from a WeightSource, so the same lowering serves dense validation graphs (DenseWeights)
// and the exporter's quantized ones.
package lower

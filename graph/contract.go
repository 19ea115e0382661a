package graph

import "fmt"

// Contract is an engine's I/O contract (docs/targets.md).
type Contract uint8

const (
	// Pipelined: one token per call, input_ids [1,1], position_ids [1,P] (P = tokens so far,
	// dynamic), states keyCache/valueCache [Lf,1,Hkv,S,D] (S dynamic), convState, recState;
	// output logits [1,1,V]. gpu-pipelined, ios-ane and macos.
	Pipelined Contract = iota + 1
	// HostDecode: the ios-gpu static monolith: the host passes past K/V [Lf,1,Hkv,ctx,D], a
	// causal_mask [1,1,1,ctx+1] and the SSM states, and gets back this token's K/V column and the
	// new SSM states, plus logits and the greedy next_token.
	HostDecode
	// HostPrefill: the ios-gpu prefill companion: HostDecode for a block of PrefillTokens tokens,
	// the gated-delta scan unrolled PrefillTokens times.
	HostPrefill
	// Stock: Apple's own Qwen3.5 export contract (docs/apple-qwen35-contract.md), two entrypoints
	// in one module: @main (input_ids [1,q], position_ids [1,P], both dynamic; states keyCache,
	// valueCache, convStates, recurrentStates; output logits [1,q,V]) and @prefill (the same
	// inputs and states, no outputs). See lower/stock.go.
	Stock
)

func (c Contract) String() string {
	switch c {
	case Pipelined:
		return "pipelined"
	case HostDecode:
		return "host-cache decode"
	case HostPrefill:
		return "host-cache prefill"
	case Stock:
		return "stock"
	}
	return fmt.Sprintf("Contract(%d)", uint8(c))
}

// I/O names of the contracts.
const (
	InInputIDs    = "input_ids"
	InPositionIDs = "position_ids"
	InCausalMask  = "causal_mask"
	StateKey      = "keyCache"
	StateValue    = "valueCache"
	StateConv     = "convState"
	StateRec      = "recState"
	InPastK       = "past_k"
	InPastV       = "past_v"
	InConvState   = "conv_state"
	InRecState    = "rec_state"
	OutLogits     = "logits"
	OutNextToken  = "next_token"
	OutKCur       = "k_cur"
	OutVCur       = "v_cur"
	OutConvCur    = "conv_cur"
	OutRecCur     = "rec_cur"
)

// MaskedScore is the additive causal-mask value for a hidden position (fp16-safe).
const MaskedScore = -1e4

// I/O names of the Stock contract beyond the pipelined ones (Apple's _constants.py names).
const (
	StateConvStates      = "convStates"
	StateRecurrentStates = "recurrentStates"
	FuncMain             = "main"
	FuncPrefill          = "prefill"
)

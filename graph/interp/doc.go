// Package interp runs graph modules on the CPU: an Interpreter executes one function of a module
// on the exact bytes a bundle holds, and a Session (StockSession for Apple's stock contract) drives
// a lowered module token by token the way its engine does. The gate, `qconv run` and the tests
// that compare lowered graphs with the transformers goldens run models through it.
package interp

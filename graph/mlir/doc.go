// Package mlir writes a graph.Module as MLIR text (generic op syntax, as mlir-opt prints it) and
// as MLIR bytecode (the main.mlirb a bundle ships), and reads that bytecode back into a Module, as
// go/printer and go/parser do for go/ast. The reader accepts what WriteBytecode writes and what
// upstream mlir-opt --emit-bytecode writes for the same module (docs/bytecode.md).
package mlir

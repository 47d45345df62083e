// Package errlist renders and unwraps a list of errors, for the list types
// that report every error of one input together (engine.Errors,
// pipelines.ErrorList, expr.ErrorList): one error per line, and each
// error visible to errors.Is and errors.As, as errors.Join does, but for a
// named slice type that callers can also range over.
package errlist

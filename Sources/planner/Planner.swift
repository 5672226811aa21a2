import ArgumentParser
import Foundation
import PlannerCore

@main
struct Planner: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "planner",
        abstract: "Capacity planner for LLM inference on one GPU with host-memory offloading.",
        subcommands: [SweepCommand.self, PlanCommand.self, Simulate.self, ServeCommand.self, ValidateCommand.self, ProfileCommand.self, Catalog.self, RunCommand.self]
    )
}

/// Writes a JSON document to standard output, followed by a newline.
func printJSON(_ data: Data) {
    FileHandle.standardOutput.write(data)
    print()
}

/// Writes a JSON object to standard output, pretty-printed with sorted keys.
func printJSONObject(_ object: Any) throws {
    printJSON(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]))
}

/// Runs a body and turns the planner's own errors into one line on standard error and exit code 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as InputError {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode.failure
    } catch let e as CapacityError {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode.failure
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error.localizedDescription)\n".utf8))
        throw ExitCode.failure
    }
}

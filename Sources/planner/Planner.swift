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

    /// The planner's one convention for errors: a single line on standard error that starts with
    /// `error: `. Exit status 1 for input it refuses (a file, a value out of range, a configuration
    /// that does not fit); 64 (EX_USAGE) for a command line the argument parser cannot read (an
    /// unknown option, a missing argument, a value of the wrong type). `--help` prints to standard
    /// output and exits 0.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            // The command has already printed its one line (reportingErrors).
            Foundation.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            let subcommands = configuration.subcommands.map { $0._commandName }
            let words = CommandLine.arguments.dropFirst().prefix { !$0.hasPrefix("-") }.filter { subcommands.contains($0) || $0 == "import" || $0 == "show" }
            let command = (["planner"] + words).joined(separator: " ")
            let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            let text = message.hasPrefix("Error: ") ? String(message.dropFirst("Error: ".count)) : message
            FileHandle.standardError.write(Data("error: \(text) ('\(command) --help' lists the options)\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }
}

/// Writes a JSON document to standard output, followed by a newline.
func printJSON(_ data: Data) {
    FileHandle.standardOutput.write(data)
    print()
}

/// Writes a JSON object to standard output, pretty-printed with sorted keys. A number that is not
/// finite (JSON has none) is refused naming its path, instead of failing inside the serializer.
func printJSONObject(_ object: Any) throws {
    try requireFinite(object, path: "")
    printJSON(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]))
}

func requireFinite(_ value: Any, path: String) throws {
    switch value {
    case let d as Double where !d.isFinite:
        throw InputError(field: path.isEmpty ? "output" : path, "is \(d), which JSON cannot hold; the input that led to it is out of range")
    case let o as [String: Any]:
        for (k, v) in o { try requireFinite(v, path: path.isEmpty ? k : "\(path).\(k)") }
    case let a as [Any]:
        for (i, v) in a.enumerated() { try requireFinite(v, path: "\(path)[\(i)]") }
    default: break
    }
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

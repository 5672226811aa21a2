import Foundation

/// A line chart written as SVG by hand: throughput against the KV:ACT ratio, one line per batch size.
public enum SVGChart {
    /// Size of one chart of `lines`; `stacked` places charts of this size one below the other.
    static let width = 860, height = 500
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// `series`: a label and its (x, y) points, nil y where the point is infeasible (the line breaks there).
    public static func lines(title: String, xLabel: String, yLabel: String, series: [(String, [(Double, Double?)])],
                             mark: (Double, Double)? = nil) -> String {
        let width = Double(Self.width), height = Double(Self.height)
        let left = 70.0, right = 170.0, top = 50.0, bottom = 60.0
        let plotW = width - left - right, plotH = height - top - bottom
        let xs = series.flatMap { $0.1.map(\.0) }
        let ys = series.flatMap { $0.1.compactMap(\.1) }
        let xMin = xs.min() ?? 0, xMax = max(xs.max() ?? 1, xMin + 1e-9)
        let yMax = niceCeiling(max(ys.max() ?? 1, 1e-9))
        func px(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * plotW }
        func py(_ y: Double) -> Double { top + plotH - y / yMax * plotH }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(left)\" y=\"28\" font-size=\"15\">\(esc(title))</text>\n"
        for i in 0 ... 5 {
            let y = yMax * Double(i) / 5
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, py(y), left + plotW, py(y))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%@</text>\n", left - 6, py(y) + 4, fmtTick(y))
        }
        for i in 0 ... 10 {
            let x = xMin + (xMax - xMin) * Double(i) / 10
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", px(x), top, px(x), top + plotH)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", px(x), top + plotH + 18, fmtTick(x))
        }
        s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", left, top, plotW, plotH)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%@</text>\n", left + plotW / 2, height - 15, esc(xLabel))
        s += String(format: "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">%@</text>\n", top + plotH / 2, esc(yLabel))
        for (k, (label, points)) in series.enumerated() {
            let color = palette[k % palette.count]
            var segment: [String] = []
            func flush() {
                if segment.count > 1 {
                    s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(segment.joined(separator: " "))\"/>\n"
                } else if segment.count == 1 {
                    let xy = segment[0].split(separator: ",")
                    s += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"2.5\" fill=\"\(color)\"/>\n"
                }
                segment = []
            }
            for (x, y) in points {
                if let y { segment.append(String(format: "%.1f,%.1f", px(x), py(y))) } else { flush() }
            }
            flush()
            let ly = top + 10 + Double(k) * 20
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"2\"/>\n", left + plotW + 15, ly, left + plotW + 40, ly, color)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\">%@</text>\n", left + plotW + 46, ly + 4, esc(label))
        }
        if let (x, y) = mark {
            s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"none\" stroke=\"black\" stroke-width=\"2\"/>\n", px(x), py(y))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\">best</text>\n", px(x) + 8, py(y) - 8)
        }
        s += "</svg>\n"
        return s
    }

    /// Charts made by `lines`, stacked top to bottom in one SVG.
    public static func stacked(_ charts: [String]) -> String {
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height * charts.count)\" viewBox=\"0 0 \(width) \(height * charts.count)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        for (i, chart) in charts.enumerated() {
            let body = chart.split(separator: "\n").dropFirst().filter { $0 != "</svg>" }.joined(separator: "\n")
            s += "<g transform=\"translate(0 \(i * height))\">\n\(body)\n</g>\n"
        }
        return s + "</svg>\n"
    }

    static func niceCeiling(_ v: Double) -> Double {
        let e = pow(10, floor(log10(v)))
        for m in [1.0, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10] where m * e >= v { return m * e }
        return 10 * e
    }

    static func fmtTick(_ v: Double) -> String {
        if abs(v) >= 1e6 { return String(format: "%.3g", v) }
        if abs(v - v.rounded()) < 1e-9 * max(1, abs(v)) { return String(Int(v.rounded())) }
        // One decimal from 10 up (no trailing ".0"), three significant digits below.
        guard abs(v) >= 10 else { return String(format: "%.3g", v) }
        let text = String(format: "%.1f", v)
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
    }

    /// Throughput against the KV fraction, one line per batch (hybrid grid of a sweep).
    public static func sweep(_ r: SweepResult) -> String {
        let s = r.sweep
        var series: [(String, [(Double, Double?)])] = []
        for line in s.space.lines {
            let points = r.hybrid.filter {
                $0.candidate.batch == line.batch && $0.candidate.weightsGPUFraction == line.weightsGPUFraction
                    && { if case .hybrid(_, let rho) = $0.candidate.kind { return rho == line.recomputeFraction } else { return false } }($0)
            }.map { ($0.candidate.kvFraction ?? 0, $0.feasible ? Optional($0.tokensPerSecond) : nil) }
            var label = "batch \(line.batch)"
            if s.space.weightsGPUFractions.count > 1 { label += ", w \(fmt(line.weightsGPUFraction))" }
            if s.space.recomputeFractions.count > 1 { label += ", rc \(fmt(line.recomputeFraction))" }
            series.append((label, points))
        }
        let mark = r.best.map { ($0.candidate.kvFraction ?? 0, $0.tokensPerSecond) }
        return lines(title: "\(s.setup.model.name) on \(s.setup.hardware.name): throughput vs KV fraction of host tokens",
                     xLabel: "KV fraction of host-resident tokens (0 = all ACT, 1 = all KV)", yLabel: "tokens/s",
                     series: series, mark: mark)
    }
}

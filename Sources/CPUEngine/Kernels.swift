import CBLAS
import Foundation

/// The decoder's kernels on row-major fp32 matrices. Every one works row by row with a fixed order
/// of operations, so that a row gets the same bits whichever batch of rows it is computed in; the
/// matrix products are OpenBLAS's `cblas_sgemm`.
enum Kernels {
    /// `C[m x n] = A[m x k] B[k x n]` (or `C +=` when `accumulate`).
    @inline(__always)
    static func gemm(m: Int, n: Int, k: Int, _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                     _ c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, accumulate: Bool = false, transB: Bool = false) {
        guard m > 0, n > 0, k > 0 else { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda), b, Int32(ldb), accumulate ? 1 : 0, c, Int32(ldc))
    }

    /// Layer norm (OPT) when `beta` is given, RMS norm (Llama) otherwise; eps 1e-5.
    static func norm(_ x: UnsafePointer<Float>, rows: Int, width: Int, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>?,
                     into out: UnsafeMutablePointer<Float>, inStride: Int? = nil) {
        let ld = inStride ?? width
        let n = Float(width)
        for r in 0 ..< rows {
            let xr = x + r * ld, o = out + r * width
            if let beta {
                var mean: Float = 0
                for i in 0 ..< width { mean += xr[i] }
                mean /= n
                var variance: Float = 0
                for i in 0 ..< width { let d = xr[i] - mean; variance += d * d }
                let inv = 1 / (variance / n + 1e-5).squareRoot()
                for i in 0 ..< width { o[i] = (xr[i] - mean) * inv * gamma[i] + beta[i] }
            } else {
                var ms: Float = 0
                for i in 0 ..< width { ms += xr[i] * xr[i] }
                let inv = 1 / (ms / n + 1e-5).squareRoot()
                for i in 0 ..< width { o[i] = xr[i] * inv * gamma[i] }
            }
        }
    }

    /// `x[r] += v` for every row.
    static func addRows(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, ld: Int, _ v: UnsafePointer<Float>) {
        for r in 0 ..< rows {
            let xr = x + r * ld
            for i in 0 ..< width { xr[i] += v[i] }
        }
    }

    static func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
        for i in 0 ..< count { x[i] += y[i] }
    }

    static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0 ..< count where x[i] < 0 { x[i] = 0 }
    }

    /// Gated FFN activation: `out[r][i] = silu(gu[r][i]) * gu[r][ffn + i]`.
    static func siluGate(_ gu: UnsafePointer<Float>, rows: Int, ffn: Int, into out: UnsafeMutablePointer<Float>) {
        for r in 0 ..< rows {
            let g = gu + r * 2 * ffn, o = out + r * ffn
            for i in 0 ..< ffn {
                let a = g[i]
                o[i] = a / (1 + expf(-a)) * g[ffn + i]
            }
        }
    }

    /// Rotary position embedding (rotate-half convention of Llama) of `heads` heads of `d` values at
    /// `v`, for position `pos`; `table` holds cos then sin, `d / 2` each, per position.
    @inline(__always)
    static func rope(_ v: UnsafeMutablePointer<Float>, heads: Int, d: Int, pos: Int, table: UnsafePointer<Float>) {
        let half = d / 2
        let c = table + pos * d, s = c + half
        for h in 0 ..< heads {
            let x = v + h * d
            for i in 0 ..< half {
                let x1 = x[i], x2 = x[i + half]
                x[i] = x1 * c[i] - x2 * s[i]
                x[i + half] = x2 * c[i] + x1 * s[i]
            }
        }
    }

    /// Softmax of the first `valid` entries of a row of `total`; the rest set to zero (causal mask).
    @inline(__always)
    static func softmax(_ s: UnsafeMutablePointer<Float>, valid: Int, total: Int) {
        var m = -Float.infinity
        for j in 0 ..< valid where s[j] > m { m = s[j] }
        var sum: Float = 0
        for j in 0 ..< valid {
            let e = expf(s[j] - m)
            s[j] = e
            sum += e
        }
        let inv = 1 / sum
        for j in 0 ..< valid { s[j] *= inv }
        for j in valid ..< total { s[j] = 0 }
    }

    /// Attention of `n` query rows per sequence at positions `pos` (ascending) over the keys and values
    /// at positions `0 ... pos[n-1]` of `kv`, each query seeing the positions up to its own.
    ///
    /// Layouts (position-major, as the engine keeps every cache): query `i` of sequence `b` is row
    /// `i * batch + b` of `q` (row stride `ldq`, head `hq` at `hq * d`); K and V of position `p`,
    /// sequence `b` are row `p * batch + b` of `kv`, K then V (`2 * kvHeads * d` values). The output
    /// row `i * batch + b` of `out` holds `heads * d` values. `scores` needs `n * (pos[n-1] + 1)` floats.
    static func attention(q: UnsafePointer<Float>, ldq: Int, kv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                          pos: [Int], batch: Int, heads: Int, kvHeads: Int, d: Int, scores: UnsafeMutablePointer<Float>) {
        let n = pos.count
        guard n > 0 else { return }
        let keys = pos[n - 1] + 1
        let group = heads / kvHeads
        let kvWidth = 2 * kvHeads * d
        let ldkv = batch * kvWidth
        let qDim = heads * d
        let alpha = 1 / Float(d).squareRoot()
        for b in 0 ..< batch {
            for h in 0 ..< kvHeads {
                let k = kv + b * kvWidth + h * d
                let v = k + kvHeads * d
                if n == 1 {
                    // One query per sequence (decode): the group's query heads are one matrix of `group` rows.
                    let qh = q + b * ldq + h * group * d
                    gemm(m: group, n: keys, k: d, qh, lda: d, k, ldb: ldkv, scores, ldc: keys, alpha: alpha, transB: true)
                    for g in 0 ..< group { softmax(scores + g * keys, valid: pos[0] + 1, total: keys) }
                    gemm(m: group, n: d, k: keys, scores, lda: keys, v, ldb: ldkv, out + b * qDim + h * group * d, ldc: d)
                } else {
                    for g in 0 ..< group {
                        let hq = h * group + g
                        gemm(m: n, n: keys, k: d, q + b * ldq + hq * d, lda: batch * ldq, k, ldb: ldkv, scores, ldc: keys,
                             alpha: alpha, transB: true)
                        for i in 0 ..< n { softmax(scores + i * keys, valid: pos[i] + 1, total: keys) }
                        gemm(m: n, n: d, k: keys, scores, lda: keys, v, ldb: ldkv, out + b * qDim + hq * d, ldc: batch * qDim)
                    }
                }
            }
        }
    }
}

"""The GOZ paper's analyses, one module each, over the files `goz bench` and `goz split build` write.

| module | `goz analyze` | the original notebook |
|---|---|---|
| `errors` | `errors` | `zsl.py` `count_struct`; `Global Error Distribution` |
| `factors` | `factors` | `Error Factors` |
| `sweep` | `sweep words|images|sense|ratio|size` | `Quantify semantic factors`, `Quantify visual factors` (accuracy parts) |
| `population` | `population` | `Quantify visual factors` (image counts, depth), the word-occurrence CDF |
| `bias` | `bias` (`--compare`) | `Structural Bias` |

Each writes `<name>.md`, `<name>.csv` (every plotted number), PNG figures and, on request, LaTeX
tables; outputs made from synthetic inputs say SYNTHETIC DATA (`goz.bench.analysis.common`).
"""

from goz.bench.analysis.bias import (
           BiasAnalysis,
           BiasComparison,
           analyze_bias,
           compare_bias,
           trivial_semantics,
)
from goz.bench.analysis.errors import (
           ErrorAnalysis,
           ErrorClassifier,
           analyze_errors,
           read_noisy,
)

__all__ = ["BiasAnalysis", "BiasComparison", "ErrorAnalysis", "ErrorClassifier", "analyze_bias", "analyze_errors",
           "compare_bias", "read_noisy", "trivial_semantics"]

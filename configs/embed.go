package configs

import _ "embed"

// DemoLSTM is lstm-solar.yaml, the demo job (an LSTM forecaster on synthetic PV data),
// built into the binary so it runs from any directory. Load it with
// LoadBytes("lstm-solar.yaml", DemoLSTM, "", overrides).
//
//go:embed lstm-solar.yaml
var DemoLSTM []byte

// Package solar provides hourly photovoltaic (PV) power series for the LSTM
// forecaster and what forecasting them takes: a synthetic generator built on
// solar geometry and a stochastic cloud process, readers of real PV history
// (a generic CSV and the PVGIS hourly export), the plant's clear-sky power,
// the Preprocessing that turns a series into normalized train/validation/test
// windows (fitted on the training hours, a JSON document stored with the
// model, and able to prepare one forecast from any history of the plant:
// Query), the four baselines a forecast is judged against (24-hour
// persistence, smart persistence, climatology, CLIPER) and the daylight
// Scores of a forecast against them.
//
// Guarantees:
//
//   - Units: power in kW, irradiance in W/m², temperature in °C, cloud cover
//     as a fraction in [0, 1], times in UTC.
//   - Every *Series returned by this package is hourly and chronological:
//     Time is strictly increasing by exactly one hour, Power is finite and
//     >= 0, and the optional columns are nil or as long as Time.
//   - Determinism: Generate returns identical series for identical
//     SynthConfigs (seed included), run after run; it uses math/rand/v2 PCG
//     generators seeded from SynthConfig.Seed, never a global source. (Across
//     CPU architectures the last bits may differ, as Go may fuse
//     multiply-adds.) MakeDataset is a pure function of its inputs, and a
//     Preprocessing read back from its JSON prepares the same inputs bit for
//     bit.
//   - No leakage: MakeDataset splits by time (train, then validation, then
//     test), no window crosses a split boundary, so every validation or test
//     input comes after the last training target, and the normalization, the
//     climatology and CLIPER's weights are fitted on the training hours only.
//   - Forecasts in kW are never below 0 nor above capacity, and exactly 0
//     while the plant's clear-sky power is 0 (night); scores count only
//     daylight hours (sun zenith below 87°) whose power was measured.
//   - Readers never guess silently: a bad row is a *ParseError naming the file
//     and line; the only repair is linear interpolation over short gaps, and
//     each one is listed in Series.Repairs.
//
// Nothing here touches the network or global state; all functions are safe
// for concurrent use.
package solar

import Mathlib

/-!
# Real numbers: squares, absolute values and roots
-/

namespace Farm.Real

/-- The square of a real number is nonnegative. -/
theorem sq_nonneg (a : ℝ) : 0 ≤ a ^ 2 := by
  positivity

/-- The product of a real number with itself is nonnegative. -/
theorem mul_self_nonneg (a : ℝ) : 0 ≤ a * a :=
  _root_.mul_self_nonneg a

/-- The absolute value of a real number is nonnegative. -/
theorem abs_nonneg (a : ℝ) : 0 ≤ |a| :=
  _root_.abs_nonneg a

/-- The triangle inequality for the absolute value. -/
theorem abs_add (a b : ℝ) : |a + b| ≤ |a| + |b| :=
  _root_.abs_add a b

/-- The square root of a square is the absolute value. -/
theorem sqrt_sq_eq_abs (x : ℝ) : Real.sqrt (x ^ 2) = |x| :=
  Real.sqrt_sq_eq_abs x

/-- The square root is monotone. -/
theorem sqrt_le_sqrt {x y : ℝ} (h : x ≤ y) : Real.sqrt x ≤ Real.sqrt y :=
  Real.sqrt_le_sqrt h

/-- Two squares: `(a + b)² = a² + 2ab + b²`. -/
theorem add_sq (a b : ℝ) : (a + b) ^ 2 = a ^ 2 + 2 * a * b + b ^ 2 := by
  ring

/-- The difference of two squares factors. -/
theorem sq_sub_sq (a b : ℝ) : a ^ 2 - b ^ 2 = (a + b) * (a - b) := by
  ring

/-- The exponential function is positive. -/
theorem exp_pos (x : ℝ) : 0 < Real.exp x :=
  Real.exp_pos x

/-- The natural logarithm of one is zero. -/
theorem log_one : Real.log 1 = 0 :=
  Real.log_one

end Farm.Real

set_option debug.skipKernelTC true
theorem not_checked : 1 = 1 := rfl
